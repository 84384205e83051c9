package suggest

import (
	"slices"
	"testing"
)

func TestClosest(t *testing.T) {
	names := []string{"echo", "ping", "help", "hello", "go.micro.bot.echo", "greeter", "time"}
	for _, tc := range []struct {
		word string
		want []string
	}{
		{"ecko", []string{"echo", "go.micro.bot.echo"}},
		{"pnig", []string{"ping"}},
		{"greet", []string{"greeter"}},
		{"ECHO", []string{"go.micro.bot.echo"}},
		{"deploy", nil},
		{"hepl", []string{"help", "hello"}},
	} {
		if got := Closest(tc.word, names); !slices.Equal(got, tc.want) {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"ping", "pnig", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"é", "e", 1}} {
		if d := Distance(tc.a, tc.b); d != tc.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote([]string{"a", "b", "c"}); got != `"a", "b" or "c"` {
		t.Errorf("Quote = %s", got)
	}
	if got := Quote([]string{"a"}); got != `"a"` {
		t.Errorf("Quote = %s", got)
	}
}
