package router

import (
	"context"
	"strings"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/builtin"
	"github.com/botmesh/botmesh/router/directory"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/sdk/parse"
	"go-micro.dev/v4/registry"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// matcher is a router with what handle consults to decide what a message
// is and whether its author may run it: its built-ins, its directory and
// its policy.
type matcher struct{ r *Router }

// route does for ev what handle does before it runs anything: parse, key,
// yes/no, then resolve and decide, handle's own methods. It leaves out the
// rate limiter, the reply and the audit record.
func (m *matcher) route(ctx context.Context, ev *chatopsv1.Event) (string, policy.Decision, bool) {
	msg, err := parse.Parse(ev.GetData(), parse.DefaultMaxBytes)
	if err != nil {
		return "", policy.Decision{}, false
	}
	key := msg.Key()
	if yesPattern.MatchString(key) || noPattern.MatchString(key) {
		return key, policy.Decision{}, true
	}
	t, ok := m.r.resolve(ctx, key, msg.Words)
	if !ok {
		return "", policy.Decision{}, false
	}
	return t.name, m.r.decide(ev, t.name), true
}

// benchHelp is what the seed command services answer to Command.Help.
var benchHelp = map[string]*chatopsv1.HelpResponse{
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
	"go.micro.bot.greeter": {Usage: "greeter NAME", Description: "Says hello"},
}

// benchMatcher returns a matcher whose directory runs on a memory registry
// holding the seed command services (two nodes each), with their Help
// answers, and the shipped default policy.
func benchMatcher(b *testing.B) *matcher {
	b.Helper()
	reg := registry.NewMemoryRegistry()
	for name := range benchHelp {
		for _, node := range []string{"1", "2"} {
			s := &registry.Service{Name: name, Version: "latest", Nodes: []*registry.Node{{Id: name + "-" + node, Address: "127.0.0.1:1"}}}
			if err := reg.Register(s); err != nil {
				b.Fatal(err)
			}
		}
	}
	dir := directory.New(reg, "go.micro.bot", directory.WithResync(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dir.Run(ctx, func(_ context.Context, service string) (*chatopsv1.HelpResponse, error) {
			return benchHelp[service], nil
		})
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	<-dir.Ready()
	for deadline := time.Now().Add(5 * time.Second); len(dir.Commands()) != 8; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("directory has %d commands, want 8", len(dir.Commands()))
		}
	}
	return &matcher{r: &Router{builtins: builtin.Commands(time.Now), dir: dir, cfg: Config{Policy: policy.Default()}}}
}

// benchEvent is a message as a Slack gateway publishes it.
func benchEvent(text string) *chatopsv1.Event {
	return &chatopsv1.Event{
		Id:       "Ev0MENTION1",
		Type:     chatopsv1.EventType_EVENT_TYPE_MESSAGE,
		From:     &chatopsv1.Peer{Id: "UADA0001", Name: "ada", Team: "T0001"},
		To:       "CGENERAL1",
		Data:     []byte(text),
		Meta:     map[string]string{"slack.ts": "1700000001.000200", "slack.event": "app_mention", "slack.team": "T0001"},
		Platform: "slack",
		Gateway:  "gw-1",
		Thread:   "1700000001.000200",
		Time:     timestamppb.New(time.Unix(1700000001, 200000)),
		ReplyTo:  "bot.v1.out.gw-1.1",
	}
}

// BenchmarkParseMatch measures route, the parse and match of one event as
// handle does it (path), against strings.Fields of the same text and a map
// lookup of its first word (baseline): the least a router could do to find
// a command.
func BenchmarkParseMatch(b *testing.B) {
	m := benchMatcher(b)
	table := map[string]string{"help": "help", "ping": "ping", "hello": "hello", "time": "time"}
	for _, c := range m.r.dir.Commands() {
		table[c.Words[0]] = c.Pattern()
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, text, command string // command "" when nothing matches
		allowed             bool
	}{
		{"ping", "ping", "ping", true},
		{"help", "help", "help", true},
		{"three-laws", "the three laws", "the three laws", true},
		{"echo", "echo hello world", "echo", true},
		{"list-services", "list services", "list services", true},
		{"query", `query go.micro.srv.greeter Say.Hello {"name":"John"}`, "query", false},
		{"unknown", "deploy api", "", false},
		{"echo-4KB", "echo " + strings.Repeat("2026-01-02T03:04:05.123Z INFO request served path=/api/v1/items status=200 took=12ms\n", 49)[:4091], "echo", true},
	} {
		ev := benchEvent(tc.text)
		name, d, ok := m.route(ctx, ev)
		if ok != (tc.command != "") || name != tc.command || d.Allowed != tc.allowed {
			b.Fatalf("%s: routed to %q (%v), allowed %v; want %q, allowed %v", tc.name, name, ok, d.Allowed, tc.command, tc.allowed)
		}
		b.Run(tc.name+"/path", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _, _ = m.route(ctx, ev)
			}
		})
		b.Run(tc.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				words := strings.Fields(tc.text)
				_ = table[words[0]]
			}
		})
	}
}
