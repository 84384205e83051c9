package directory

import (
	"fmt"
	"strings"
	"testing"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"go-micro.dev/v4/registry"
)

// seedHelp is what the seed command services answer to Command.Help.
var seedHelp = map[string]*chatopsv1.HelpResponse{
	"go.micro.bot.echo": {Usage: "echo [text]", Description: "Returns the [text]"},
	"go.micro.bot.registry-cmd": {Commands: []*chatopsv1.CommandSpec{
		{Pattern: "list services", Usage: "list services"},
		{Pattern: "get service", Usage: "get service NAME"},
		{Pattern: "register service", Usage: "register service DEFINITION"},
		{Pattern: "deregister service", Usage: "deregister service DEFINITION"},
	}},
	"go.micro.bot.query": {Commands: []*chatopsv1.CommandSpec{
		{Pattern: "query", Usage: "query SERVICE METHOD [JSON]"},
		{Pattern: "health", Usage: "health SERVICE"},
	}},
}

// benchDirectory returns a directory that knows the seed command services
// and enough others ("cmdNN", each with two nodes, answering Help with its
// usage) to make n services, as if their registrations and Help answers had
// arrived. It does not run: nothing changes while the benchmark runs.
func benchDirectory(b *testing.B, n int) *Directory {
	b.Helper()
	d := New(registry.NewMemoryRegistry(), "go.micro.bot")
	help := map[string]*chatopsv1.HelpResponse{}
	for name, rsp := range seedHelp {
		help[name] = rsp
	}
	for i := 0; len(help) < n; i++ {
		help[fmt.Sprintf("go.micro.bot.cmd%02d", i)] = &chatopsv1.HelpResponse{Usage: fmt.Sprintf("cmd%02d ARGS", i)}
	}
	for name, rsp := range help {
		d.apply("create", svc(name, name+"-1", name+"-2"))
		e := d.services[name]
		e.commands = defaultCommands(name, e.name, rsp)
		e.helps[""] = rsp
	}
	if got := d.Services(); got != n {
		b.Fatalf("%d services, want %d", got, n)
	}
	return d
}

// BenchmarkMatch measures Directory.Match, the router's lookup of a
// message's words among the command services' patterns (path), against a
// map lookup of the first word (baseline), for the seed services alone and
// among 100.
func BenchmarkMatch(b *testing.B) {
	long := strings.Fields("echo " + strings.Repeat("a pasted log line of several words\n", 120))
	for _, size := range []int{3, 100} {
		d := benchDirectory(b, size)
		table := map[string]Command{}
		for _, c := range d.Commands() {
			table[c.Words[0]] = c
		}
		for _, tc := range []struct {
			name    string
			words   []string
			pattern string // "" for no match
		}{
			{"echo", []string{"echo", "hello", "world"}, "echo"},
			{"list-services", []string{"list", "services"}, "list services"},
			{"query", []string{"query", "go.micro.srv.greeter", "Say.Hello", `{"name":"John"}`}, "query"},
			{"miss", []string{"deploy", "api"}, ""},
			{"echo-4KB", long, "echo"},
		} {
			if c, ok := d.Match(tc.words); ok != (tc.pattern != "") || c.Pattern() != tc.pattern {
				b.Fatalf("%s: matched %q (%v), want %q", tc.name, c.Pattern(), ok, tc.pattern)
			}
			name := fmt.Sprintf("services=%d/%s", size, tc.name)
			b.Run(name+"/path", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_, _ = d.Match(tc.words)
				}
			})
			b.Run(name+"/baseline", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_ = table[tc.words[0]]
				}
			})
		}
	}
}
