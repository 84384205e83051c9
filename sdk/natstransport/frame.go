package natstransport

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"go-micro.dev/v4/transport"
)

// The wire form of a transport.Message is the JSON that go-micro's NATS
// transport plugin writes with its default codec (encoding/json):
//
//	{"Header":{"Content-Type":"application/protobuf",…},"Body":"<base64>"}
//
// so that services and clients on the plugin and on this transport call
// each other. encoding/json spends most of its time in reflection; these
// functions write the same JSON directly, and read it with a fast path for
// what go-micro peers write, falling back to encoding/json for anything
// else (escapes, other spellings, odd whitespace), so that every document
// encoding/json accepts reads the same.

// appendFrame appends the JSON form of m to b.
func appendFrame(b []byte, m *transport.Message) []byte {
	b = append(b, `{"Header":`...)
	if m.Header == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		first := true
		for k, v := range m.Header {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, v)
		}
		b = append(b, '}')
	}
	b = append(b, `,"Body":`...)
	if m.Body == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, m.Body)
		b = append(b, '"')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does
// (invalid UTF-8 becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// errFallback sends a document to encoding/json.
var errFallback = errors.New("natstransport: not the common form")

// readFrame reads the JSON form of a message into m. Headers are added to
// m.Header (made if nil); a null Header leaves it as it is.
func readFrame(data []byte, m *transport.Message) error {
	if err := readFast(data, m); err == nil {
		return nil
	}
	v := transport.Message{Body: m.Body}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if v.Header != nil {
		if m.Header == nil {
			m.Header = make(map[string]string, len(v.Header))
		}
		for k, val := range v.Header {
			m.Header[k] = val
		}
	}
	m.Body = v.Body
	return nil
}

// readFast reads the form go-micro peers write: no escapes in strings, no
// whitespace, the keys spelled Header and Body. Anything else is
// errFallback, and m is then untouched.
func readFast(d []byte, m *transport.Message) error {
	var (
		header map[string]string
		body   []byte
		hasHdr bool
		hasBdy bool
	)
	i := 0
	if i >= len(d) || d[i] != '{' {
		return errFallback
	}
	i++
	for {
		key, n, ok := fastString(d, i)
		if !ok || n >= len(d) || d[n] != ':' {
			return errFallback
		}
		i = n + 1
		switch key {
		case "Header":
			if hasHdr {
				return errFallback
			}
			hasHdr = true
			if hasPrefix(d, i, "null") {
				i += 4
				break
			}
			if i >= len(d) || d[i] != '{' {
				return errFallback
			}
			i++
			header = map[string]string{}
			if i < len(d) && d[i] == '}' {
				i++
				break
			}
			for {
				k, n, ok := fastString(d, i)
				if !ok || n >= len(d) || d[n] != ':' {
					return errFallback
				}
				v, n2, ok := fastString(d, n+1)
				if !ok || n2 >= len(d) {
					return errFallback
				}
				header[k] = v
				i = n2
				if d[i] == ',' {
					i++
					continue
				}
				if d[i] != '}' {
					return errFallback
				}
				i++
				break
			}
		case "Body":
			if hasBdy {
				return errFallback
			}
			hasBdy = true
			if hasPrefix(d, i, "null") {
				i += 4
				break
			}
			if i >= len(d) || d[i] != '"' {
				return errFallback
			}
			end := i + 1
			for end < len(d) && d[end] != '"' {
				// base64 skips '\r' and '\n', which JSON forbids in a
				// string: leave them to encoding/json to reject.
				if d[end] == '\\' || d[end] < 0x20 {
					return errFallback
				}
				end++
			}
			if end >= len(d) {
				return errFallback
			}
			enc := d[i+1 : end]
			body = make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
			n, err := base64.StdEncoding.Decode(body, enc)
			if err != nil {
				return errFallback
			}
			body = body[:n]
			i = end + 1
		default:
			return errFallback
		}
		if i >= len(d) {
			return errFallback
		}
		if d[i] == ',' {
			i++
			continue
		}
		if d[i] != '}' || i != len(d)-1 {
			return errFallback
		}
		break
	}
	if header != nil {
		if m.Header == nil {
			m.Header = header
		} else {
			for k, v := range header {
				m.Header[k] = v
			}
		}
	}
	if hasBdy {
		m.Body = body
	}
	return nil
}

// fastString reads a JSON string at d[i] that has no escapes and is valid
// UTF-8; it returns the string and the index after it.
func fastString(d []byte, i int) (string, int, bool) {
	if i >= len(d) || d[i] != '"' {
		return "", 0, false
	}
	j := i + 1
	ascii := true
	for j < len(d) && d[j] != '"' {
		c := d[j]
		if c == '\\' || c < 0x20 {
			return "", 0, false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
		j++
	}
	if j >= len(d) {
		return "", 0, false
	}
	s := d[i+1 : j]
	if !ascii && !utf8.Valid(s) {
		return "", 0, false
	}
	return string(s), j + 1, true
}

func hasPrefix(d []byte, i int, p string) bool {
	return len(d)-i >= len(p) && string(d[i:i+len(p)]) == p
}
