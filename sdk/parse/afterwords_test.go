package parse

import (
	"strings"
	"testing"
	"unicode"
)

func TestAfterWords(t *testing.T) {
	for _, c := range []struct {
		text string
		n    int
		want string
	}{
		{"note add deploy  at 5pm", 2, "deploy  at 5pm"},
		{"  note\tadd\n  x", 2, "x"},
		{"note add", 2, ""},
		{"note", 2, ""},
		{"tell irc:#ops\u00a0echo hi", 2, "echo hi"},
		{"mail a@example.com health greeter", 2, "health greeter"},
		{"", 0, ""},
	} {
		if got := AfterWords(c.text, c.n); got != c.want {
			t.Errorf("AfterWords(%q, %d) = %q, want %q", c.text, c.n, got, c.want)
		}
	}
}

// FuzzAfterWords takes what follows the command words out of what a user
// typed (the text of "note add TEXT", the command of "tell WHERE COMMAND").
func FuzzAfterWords(f *testing.F) {
	for _, s := range []string{"note add deploy  at 5pm", "note\tadd\n  x", "note add", "  note   add   a b ", "note", "", "nöte ädd ünïcode  text", "a\u2003b\u00a0c d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got := AfterWords(text, 2)
		if !strings.HasSuffix(text, got) {
			t.Fatalf("AfterWords(%q) = %q: not the end of the text", text, got)
		}
		if strings.IndexFunc(got, unicode.IsSpace) == 0 {
			t.Fatalf("AfterWords(%q) = %q starts with a space", text, got)
		}
		// Two words and their spacing were dropped: the rest has as many
		// words as the text less two.
		want := max(len(strings.Fields(text))-2, 0)
		if n := len(strings.Fields(got)); n != want {
			t.Fatalf("AfterWords(%q) = %q: %d words, want %d", text, got, n, want)
		}
	})
}
