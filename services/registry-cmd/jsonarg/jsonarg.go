// Package jsonarg reads a JSON argument out of a chat message: the text
// after the command's words, with its spacing as typed, unwrapped from the
// code formatting chat apps add (```json … ```, `…`), and checked with
// errors that say where the JSON is wrong, in words a chat user can act on.
package jsonarg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrEmpty means there is no JSON text.
var ErrEmpty = errors.New("jsonarg: no JSON given")

// After returns what follows the first n words of text (words are separated
// by white space), without the white space around it; the rest keeps its
// spacing and line breaks. It returns "" if text has n words or fewer.
func After(text string, n int) string {
	rest := text
	for range n {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		i := strings.IndexFunc(rest, unicode.IsSpace)
		if i < 0 {
			return ""
		}
		rest = rest[i:]
	}
	return strings.TrimSpace(rest)
}

// Unwrap removes the code formatting chat apps put around pasted JSON: a
// fenced block (```…``` with an optional language word such as json on
// its first line) or single backticks.
func Unwrap(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "```") && strings.HasSuffix(s, "```") && len(s) >= 6 {
		inner := s[3 : len(s)-3]
		if nl := strings.IndexByte(inner, '\n'); nl >= 0 {
			first := strings.TrimSpace(inner[:nl])
			if first != "" && !strings.ContainsAny(first, "{[\"") {
				inner = inner[nl+1:] // language word, e.g. json
			}
		}
		return strings.TrimSpace(inner)
	}
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' && strings.Count(s, "`") == 2 {
		return strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// SyntaxError says where a JSON text is wrong.
type SyntaxError struct {
	// Line and Column are 1-based; Column counts characters, not bytes.
	Line, Column int
	// Offset is the 0-based byte offset of the error.
	Offset int
	// Msg says what is wrong.
	Msg string
	// Near is the text around the error, on one line.
	Near string
}

func (e *SyntaxError) Error() string {
	s := fmt.Sprintf("malformed JSON at line %d, column %d: %s", e.Line, e.Column, e.Msg)
	if e.Near != "" {
		s += " (near `" + e.Near + "`)"
	}
	return s
}

// Check reports whether data is exactly one JSON value (white space
// around it is fine). Its errors are *SyntaxError, or ErrEmpty.
func Check(data []byte) error {
	var v json.RawMessage
	return Decode(data, &v, false)
}

// Decode decodes the one JSON value in data into v. With strict, fields
// that v does not have are refused. Errors say where: *SyntaxError for
// malformed text and values of the wrong type, ErrEmpty for no text,
// *UnknownFieldError for a field v does not have.
func Decode(data []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return ErrEmpty
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return locate(data, dec, err)
	}
	// Exactly one value: anything but white space after it is an error.
	end := int(dec.InputOffset())
	if rest := bytes.TrimLeftFunc(data[end:], unicode.IsSpace); len(rest) > 0 {
		at := len(data) - len(rest)
		return at2(data, at, "unexpected text after the JSON value (give one value; wrap several in [ ])")
	}
	return nil
}

// UnknownFieldError is a field the target has no place for.
type UnknownFieldError struct {
	// Field is the field's name as written.
	Field string
}

func (e *UnknownFieldError) Error() string {
	return fmt.Sprintf("unknown field %q", e.Field)
}

func locate(data []byte, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		at := int(se.Offset) - 1 // Offset counts the bytes read, the bad one included
		if at < 0 {
			at = 0
		}
		return at2(data, at, explain(data, at, se.Error()))
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the value"
		} else {
			field = "field " + field
		}
		at := int(te.Offset) - 1
		if at < 0 {
			at = 0
		}
		return at2(data, at, fmt.Sprintf("%s should be %s, not %s", field, kind(te.Type.Kind().String()), te.Value))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return at2(data, len(data), explain(data, len(data), "the JSON ends too early: a closing } ] or \" is missing"))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if q, qerr := unquote(name); qerr == nil {
			name = q
		}
		return &UnknownFieldError{Field: name}
	default:
		at := int(dec.InputOffset())
		return at2(data, min(at, len(data)), strings.TrimPrefix(err.Error(), "json: "))
	}
}

func unquote(s string) (string, error) {
	var out string
	err := json.Unmarshal([]byte(s), &out)
	return out, err
}

func kind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice", "array":
		return "a list [ ]"
	case "map", "struct":
		return "an object { }"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	}
	return k
}

// explain adds what chat apps commonly do wrong to the decoder's message.
func explain(data []byte, at int, msg string) string {
	msg = strings.TrimPrefix(msg, "json: ")
	if at < len(data) && data[at] >= utf8.RuneSelf {
		// encoding/json names the first byte of a multi-byte character
		// ('â' for '“'): name the character.
		if r, _ := utf8.DecodeRune(data[at:]); r != utf8.RuneError {
			msg = strings.Replace(msg, "'"+string(rune(data[at]))+"'", "'"+string(r)+"'", 1)
		}
	}
	if bytes.ContainsAny(data, "“”‘’") {
		msg += `; the text has curly quotes (“ ” ‘ ’), which JSON does not accept: your chat app may have changed them, so type straight quotes (") or send the JSON as code`
	} else if at < len(data) && data[at] == '\'' {
		msg += `; JSON strings take double quotes (")`
	}
	return msg
}

// at2 builds a SyntaxError for byte offset at of data.
func at2(data []byte, at int, msg string) *SyntaxError {
	at = min(max(at, 0), len(data))
	line, col := 1, 1
	for _, r := range string(data[:at]) {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &SyntaxError{Line: line, Column: col, Offset: at, Msg: msg, Near: near(data, at)}
}

// near returns up to 12 characters either side of at, on one line.
func near(data []byte, at int) string {
	start, end := at, at
	for n := 0; start > 0 && n < 12; n++ {
		_, size := utf8.DecodeLastRune(data[:start])
		start -= size
	}
	for n := 0; end < len(data) && n < 12; n++ {
		_, size := utf8.DecodeRune(data[end:])
		end += size
	}
	s := strings.Join(strings.Fields(string(data[start:end])), " ")
	return strings.ToValidUTF8(s, "\uFFFD")
}
