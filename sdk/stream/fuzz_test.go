package stream

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// FuzzWords reads untrusted message text as a command filter does: the
// words are never empty, hold no white space, are valid UTF-8, and a
// filter on a message's first words selects it.
func FuzzWords(f *testing.F) {
	for _, s := range []string{"deploy api v2", "micro list services", "micro", "  Deploy\u200bdb ", "\xff\xfe deploy", "echo\tdeploy\nnow", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		words := Words(data)
		for _, w := range words {
			if w == "" || !utf8.ValidString(w) || strings.ContainsFunc(w, unicode.IsSpace) || strings.Contains(w, "\u200b") {
				t.Fatalf("Words(%q) has word %q", data, w)
			}
		}
		if again := Words([]byte(strings.Join(words, " "))); len(words) > 0 && !strings.EqualFold(words[0], "micro") && strings.Join(again, " ") != strings.Join(words, " ") {
			t.Fatalf("Words(%q) = %q, but its words read again are %q", data, words, again)
		}
		ev := &chatopsv1.Event{Data: data}
		for n := 1; n <= min(len(words), 3); n++ {
			if cmd := strings.Join(words[:n], " "); !(Filter{Command: cmd}).match(ev) {
				t.Fatalf("a filter on %q does not select %q", cmd, data)
			}
		}
	})
}
