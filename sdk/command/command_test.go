package command

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCut(t *testing.T) {
	if got := Cut([]byte("short"), 100); string(got) != "short" {
		t.Errorf("short text changed: %q", got)
	}
	text := []byte(strings.Repeat("é", 1000)) // 2000 bytes
	got := Cut(text, 500)
	if len(got) > 500 || !utf8.Valid(got) {
		t.Fatalf("cut to %d bytes, valid UTF-8 %v", len(got), utf8.Valid(got))
	}
	if !strings.HasSuffix(string(got), "\n… [cut: 1628 of 2000 bytes not shown; the limit is 500]") {
		t.Errorf("note: %q", got[len(got)-80:])
	}
	if kept := strings.Count(string(got), "é"); kept*2+1628 != 2000 {
		t.Errorf("kept %d characters; the note does not add up", kept)
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"echo", "registry-cmd", "a.b", "x_1"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Echo", "a..b", ".a", "a b", "a>", "é"} {
		if err := ValidName(bad); err == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
}
