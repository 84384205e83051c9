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
		{"ti", nil},
		{"tmie", []string{"time"}},
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

func TestCommands(t *testing.T) {
	cmds := []string{"at", "in", "help", "hello", "ping", "time", "the three laws", "echo", "list services", "get service", "register service", "deregister service", "health", "query"}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"list"}, []string{"list services"}},
		{[]string{"list", "service"}, []string{"list services"}},
		{[]string{"LIST", "servces", "now"}, []string{"list services"}},
		{[]string{"get"}, []string{"get service"}},
		{[]string{"the", "three", "law"}, []string{"the three laws"}},
		{[]string{"the", "thre", "laws", "please"}, []string{"the three laws"}},
		{[]string{"ecko", "hi"}, []string{"echo"}},
		{[]string{"pnig"}, []string{"ping"}},
		{[]string{"hepl"}, []string{"help"}},
		{[]string{"lst", "services"}, []string{"list services"}},
		{[]string{"deploy", "x"}, nil},
		{[]string{"bot", "is", "acting", "up", "again"}, nil},
		{[]string{"tim"}, []string{"time"}},
		{nil, nil},
	} {
		if got := Commands(tc.words, cmds); !slices.Equal(got, tc.want) {
			t.Errorf("Commands(%q) = %q, want %q", tc.words, got, tc.want)
		}
	}
}
