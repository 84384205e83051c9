package note

import (
	"strings"
	"testing"
)

// afterWords takes the note's text out of what the user typed: the text
// after "note add", spacing inside it kept.
func FuzzAfterWords(f *testing.F) {
	for _, s := range []string{"note add deploy  at 5pm", "note\tadd\n  x", "note add", "  note   add   a b ", "note", "", "nöte ädd ünïcode  text"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got := afterWords(text, 2)
		if !strings.HasSuffix(text, got) {
			t.Fatalf("afterWords(%q) = %q: not the end of the text", text, got)
		}
		if got != "" && strings.ContainsRune(" \t\n", rune(got[0])) {
			t.Fatalf("afterWords(%q) = %q starts with a space", text, got)
		}
		// Two words and their spacing were dropped: the rest has as many
		// words as the text less two.
		words := strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
		want := max(len(words)-2, 0)
		gotWords := strings.FieldsFunc(got, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
		if len(gotWords) != want {
			t.Fatalf("afterWords(%q) = %q: %d words, want %d", text, got, len(gotWords), want)
		}
	})
}
