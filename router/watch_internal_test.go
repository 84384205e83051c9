package router

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseHealthAfter feeds arbitrary words after "watch SERVICE health":
// they give an N from 1 to 100 (3 if none), or a sentence in valid UTF-8
// that says what N may be.
func FuzzParseHealthAfter(f *testing.F) {
	for _, s := range []string{"", "3", "0", "101", "-1", "three", "3 4", "+7", "007", "1e2", "99999999999999999999", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words := strings.Fields(s)
		n, bad := parseHealthAfter(words)
		switch {
		case bad == "" && (n < 1 || n > maxHealthAfter):
			t.Fatalf("%q: N %d accepted", s, n)
		case bad == "" && len(words) == 0 && n != defaultHealthAfter:
			t.Fatalf("no N: %d, want %d", n, defaultHealthAfter)
		case bad != "" && (n != 0 || !utf8.ValidString(bad) || !strings.HasPrefix(bad, "usage: watch SERVICE health [N]")):
			t.Fatalf("%q: %d %q", s, n, bad)
		}
	})
}
