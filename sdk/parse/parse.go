// Package parse turns the text of a chat message into the words a command
// is matched on, as routers read it; stream processors and command
// services use it to read a message the same way. It is the first code
// that reads untrusted text, so it accepts any bytes and never fails
// except for empty or oversized input.
package parse

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxBytes is the longest message accepted by default: 64 KiB, above
// Slack's 40,000-character message limit and far above anything typed.
const DefaultMaxBytes = 64 << 10

// ErrEmpty means the message has no words.
var ErrEmpty = errors.New("parse: empty message")

// TooLongError means the message is over the size limit.
type TooLongError struct {
	Size, Limit int
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("parse: message of %d bytes is over the %d-byte limit", e.Size, e.Limit)
}

// Prefix is the word a message may start with, as the Micro Bot's users
// wrote "micro help": Parse drops it.
const Prefix = "micro"

// Message is a chat message ready for matching.
type Message struct {
	// Text is the message as valid UTF-8, surrounding space trimmed, with
	// control characters other than newline and tab removed, and format
	// characters as clean describes.
	Text string
	// Words are Text split at white space; Words[0] is the command word.
	Words []string
}

// Key returns the words lower-cased and joined by single spaces: the form
// that built-in patterns and command names are matched against.
func (m Message) Key() string {
	return strings.ToLower(strings.Join(m.Words, " "))
}

// Parse reads data as a chat message. Invalid UTF-8 becomes U+FFFD; a
// message over maxBytes (before any change) is a *TooLongError; maxBytes <= 0
// means DefaultMaxBytes.
func Parse(data []byte, maxBytes int) (Message, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(data) > maxBytes {
		return Message{}, &TooLongError{Size: len(data), Limit: maxBytes}
	}
	text := string(data)
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = clean(text)
	text = strings.TrimSpace(text)
	words := strings.Fields(text)
	if len(words) == 0 {
		return Message{}, ErrEmpty
	}
	if strings.EqualFold(words[0], Prefix) {
		// The Micro Bot was addressed as "micro help", "micro list
		// services": the word is dropped, and "micro" alone asks for help.
		if len(words) == 1 {
			return Message{Text: "help", Words: []string{"help"}}, nil
		}
		text = strings.TrimLeftFunc(text[len(words[0]):], unicode.IsSpace)
		words = words[1:]
	}
	return Message{Text: text, Words: words}, nil
}

// clean removes control characters other than newline and tab, and deals
// with the invisible format characters (Unicode category Cf) that copy and
// paste brings along without merging the words around them: a zero-width
// space (U+200B) separates words, so it becomes a space; a zero-width
// joiner or non-joiner (U+200D, U+200C) is kept between two non-ASCII
// characters, where it shapes an emoji (👩‍💻) or a script, and dropped
// elsewhere; emoji tag characters (U+E0020–U+E007F) are kept; every other
// format character is dropped: the byte-order mark and word joiner
// (U+FEFF, U+2060, which join what is around them), the soft hyphen,
// bidirectional marks and overrides (which would make a command read other
// than it runs).
func clean(text string) string {
	if !strings.ContainsFunc(text, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	prev := rune(-1)
	for i, r := range text {
		switch {
		case r == '\n' || r == '\t':
		case unicode.IsControl(r):
			continue
		case r == '\u200b':
			r = ' '
		case r == '\u200c' || r == '\u200d':
			next, size := utf8.DecodeRuneInString(text[i+utf8.RuneLen(r):])
			if size == 0 || prev < utf8.RuneSelf || next < utf8.RuneSelf || unicode.IsSpace(prev) || unicode.IsSpace(next) {
				continue
			}
		case r >= 0xe0020 && r <= 0xe007f:
		case unicode.Is(unicode.Cf, r):
			continue
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

// AfterWords returns text after its first n words and the white space
// around them, the spacing inside the rest kept: AfterWords("note add  a
// b", 2) is "a b" with its inner spacing. It is "" when text has n words
// or fewer.
func AfterWords(text string, n int) string {
	for range n {
		text = strings.TrimLeftFunc(text, unicode.IsSpace)
		i := strings.IndexFunc(text, unicode.IsSpace)
		if i < 0 {
			return ""
		}
		text = text[i:]
	}
	return strings.TrimLeftFunc(text, unicode.IsSpace)
}
