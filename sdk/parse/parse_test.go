package parse

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		words []string
		text  string
		key   string
	}{
		{"single word", "ping", []string{"ping"}, "ping", "ping"},
		{"surrounding space", "  echo   hi  there \n", []string{"echo", "hi", "there"}, "echo   hi  there", "echo hi there"},
		{"case kept in words, folded in key", "The Three Laws", []string{"The", "Three", "Laws"}, "The Three Laws", "the three laws"},
		{"tabs and newlines split words", "echo a\tb\nc", []string{"echo", "a", "b", "c"}, "echo a\tb\nc", "echo a b c"},
		{"carriage returns and NUL dropped", "pi\x00ng\r\n", []string{"ping"}, "ping", "ping"},
		{"zero-width space between words separates them", "echo\u200bhi\u200bthere", []string{"echo", "hi", "there"}, "echo hi there", "echo hi there"},
		{"zero-width space after the command word", "ping\u200b", []string{"ping"}, "ping", "ping"},
		{"byte-order mark at the start dropped", "\ufeffhelp echo", []string{"help", "echo"}, "help echo", "help echo"},
		{"word joiner and soft hyphen dropped", "pi\u2060ng ec\u00adho", []string{"ping", "echo"}, "ping echo", "ping echo"},
		{"bidirectional overrides dropped", "echo \u202eabc\u202c", []string{"echo", "abc"}, "echo abc", "echo abc"},
		{"zero-width joiner kept inside an emoji", "echo \U0001F469\u200d\U0001F4BB", []string{"echo", "\U0001F469\u200d\U0001F4BB"}, "echo \U0001F469\u200d\U0001F4BB", "echo \U0001F469\u200d\U0001F4BB"},
		{"zero-width joiner between ASCII letters dropped", "pi\u200dng\u200c", []string{"ping"}, "ping", "ping"},
		{"emoji tag sequence kept", "echo \U0001F3F4\U000E0067\U000E0062\U000E007F", []string{"echo", "\U0001F3F4\U000E0067\U000E0062\U000E007F"}, "echo \U0001F3F4\U000E0067\U000E0062\U000E007F", "echo \U0001F3F4\U000E0067\U000E0062\U000E007F"},
		{"invalid UTF-8 replaced, one mark a run", "echo \xff\xfe", []string{"echo", "\uFFFD"}, "echo \uFFFD", "echo \uFFFD"},
		{"leading micro dropped", "micro help", []string{"help"}, "help", "help"},
		{"leading Micro dropped, text kept after it", "Micro  echo\tHi  there", []string{"echo", "Hi", "there"}, "echo\tHi  there", "echo hi there"},
		{"micro alone asks for help", " MICRO ", []string{"help"}, "help", "help"},
		{"micro later kept", "echo micro", []string{"echo", "micro"}, "echo micro", "echo micro"},
		{"a word starting with micro kept", "microservices", []string{"microservices"}, "microservices", "microservices"},
		{"JSON kept whole in text", `query greeter Greeter.Hello {"name": "a b"}`, []string{"query", "greeter", "Greeter.Hello", `{"name":`, `"a`, `b"}`}, `query greeter Greeter.Hello {"name": "a b"}`, `query greeter greeter.hello {"name": "a b"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.in), 0)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if !slices.Equal(m.Words, tc.words) {
				t.Errorf("words = %q, want %q", m.Words, tc.words)
			}
			if m.Text != tc.text {
				t.Errorf("text = %q, want %q", m.Text, tc.text)
			}
			if m.Key() != tc.key {
				t.Errorf("key = %q, want %q", m.Key(), tc.key)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", " ", "\n\t\r", "\x00\x01", "\u200b", "\ufeff", "\u200d\u200b\u2060"} {
		if _, err := Parse([]byte(in), 0); !errors.Is(err, ErrEmpty) {
			t.Errorf("Parse(%q) error = %v, want ErrEmpty", in, err)
		}
	}
}

func TestParseTooLong(t *testing.T) {
	in := []byte("echo " + strings.Repeat("x", 100))
	_, err := Parse(in, 50)
	var tl *TooLongError
	if !errors.As(err, &tl) {
		t.Fatalf("error = %v, want *TooLongError", err)
	}
	if tl.Size != len(in) || tl.Limit != 50 {
		t.Errorf("got size %d limit %d, want %d and 50", tl.Size, tl.Limit, len(in))
	}
	if _, err := Parse(in[:50], 50); err != nil {
		t.Errorf("a message of exactly the limit was refused: %v", err)
	}
	if _, err := Parse(make([]byte, DefaultMaxBytes+1), 0); !errors.As(err, &tl) {
		t.Errorf("default limit not applied: %v", err)
	}
}

// FuzzParse checks the properties every caller relies on, for any bytes:
// no panic; words are valid UTF-8 (protobuf refuses invalid strings), hold
// no white space or control characters, and rebuild the key.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"ping", "echo hi there", "  The Three Laws  ", "\xff\xfe", "query a B.C {\"x\": 1}", "\x00", "pi\u200bng", "micro help", "micro\u00a0 echo x", "echo\u200bhi", "\ufeffping", "a \U0001F469\u200d\U0001F4BB", "\u202eohce"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, 1<<12)
		if err != nil {
			var tl *TooLongError
			if !errors.Is(err, ErrEmpty) && !errors.As(err, &tl) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(m.Words) == 0 {
			t.Fatal("no words without an error")
		}
		if !utf8.ValidString(m.Text) {
			t.Fatalf("text %q is not valid UTF-8", m.Text)
		}
		for _, w := range m.Words {
			if !utf8.ValidString(w) || w == "" || strings.ContainsFunc(w, func(r rune) bool {
				return unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u200b' || r == '\ufeff' || unicode.In(r, unicode.Bidi_Control)
			}) {
				t.Fatalf("bad word %q", w)
			}
		}
		if strings.TrimSpace(m.Text) != m.Text {
			t.Fatalf("text %q not trimmed", m.Text)
		}
		if got := strings.ToLower(strings.Join(strings.Fields(m.Text), " ")); got != m.Key() {
			t.Fatalf("key %q does not match text words %q", m.Key(), got)
		}
	})
}
