package e2e

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/internal/allinone"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/router/ratelimit"
	"github.com/botmesh/botmesh/sdk/mesh"
)

// startMeshWith runs the all-in-one (embedded NATS, router, echo,
// registry, query, the demo greeter) on the given registry and transport,
// with a test input.
func startMeshWith(t *testing.T, edit func(*mesh.Config)) (*adaptertest.Input, string) {
	t.Helper()
	in := adaptertest.New("test")
	mcfg := mesh.DefaultConfig()
	if edit != nil {
		edit(&mcfg)
	}
	// Every command allowed, no rate limit: the policy and the limits have
	// their own tests; these are about the commands.
	allowAll, err := policy.Parse([]byte("default: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	rcfg := router.DefaultConfig()
	rcfg.Timeout, rcfg.ResyncInterval, rcfg.Policy = 15*time.Second, time.Second, allowAll
	rcfg.RateLimits = ratelimit.Config{}
	cfg := allinone.Config{Mesh: mcfg, NATSHost: "127.0.0.1", NATSPort: -1, Router: rcfg, Gateway: gateway.Config{ReplyTimeout: 25 * time.Second}}
	return in, runAllInOne(t, cfg, nil, in)
}

// reply is what a user reads, and whether it is an error.
type reply struct {
	text  string
	isErr bool
}

func chat(t *testing.T, in *adaptertest.Input, text string) reply {
	t.Helper()
	rep := ask(t, in, text)
	return reply{text: string(rep.Data), isErr: rep.Type == chatopsv1.EventType_EVENT_TYPE_ERROR}
}

// eventually asks text until the answer satisfies ok (a registration takes
// a moment to reach every registry client), for at most 15s.
func eventually(t *testing.T, in *adaptertest.Input, text string, ok func(reply) bool) reply {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := chat(t, in, text)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %q after 15s", text, r.text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var (
	nodeIDs    = regexp.MustCompile(`([a-z.]+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	latency    = regexp.MustCompile(`\(\d+(\.\d+)?(ns|µs|ms|s)\)`)
	inboxes    = regexp.MustCompile(`_INBOX\.\w+`)
	tcpAddress = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// normal hides what changes from run to run: node ids, latencies,
// addresses.
func normal(s string) string {
	s = nodeIDs.ReplaceAllString(s, "$1-ID")
	s = latency.ReplaceAllString(s, "(LATENCY)")
	s = inboxes.ReplaceAllString(s, "ADDRESS")
	return tcpAddress.ReplaceAllString(s, "ADDRESS")
}

// commandSuite drives registry and query commands through a router, as a
// chat user does, on the registry and transport that edit selects.
// registryName and transportName are what go-micro writes in node
// metadata; deadAddress is an address of that transport where nothing
// answers.
func commandSuite(t *testing.T, edit func(*mesh.Config), registryName, transportName, deadAddress string) {
	in, _ := startMeshWith(t, edit)

	want := func(text string, r reply, isErr bool) {
		t.Helper()
		if got := chat(t, in, text); normal(got.text) != r.text || got.isErr != isErr {
			t.Errorf("%s:\n%s\n(error: %v)\nwant:\n%s", text, got.text, got.isErr, r.text)
		}
	}
	ok := func(text, r string) { t.Helper(); want(text, reply{text: r}, false) }
	fails := func(text, r string) { t.Helper(); want(text, reply{text: r}, true) }
	// Registry changes always ask their author to confirm.
	confirm := func(text string) {
		t.Helper()
		if got := chat(t, in, text); !strings.Contains(got.text, "needs your confirmation") {
			t.Errorf("%s: %q, want a confirmation asked", text, got.text)
		}
	}

	help := chat(t, in, "help").text
	for _, line := range []string{
		"list services - Lists the registered services with their node counts",
		"mail [address] [command] - Runs [command] and mails its result to [address]",
		"note add [text] | note forget [n] - Keeps a note for this conversation, or forgets note [n]",
		"notes - Lists this conversation's notes",
		"get service [name] - Shows a service's versions, nodes and endpoints",
		"register service [definition] - Registers a service given as go-micro JSON",
		"deregister service [definition] - Deregisters nodes (name and node ids are enough)",
		"query [service] [method] [json] - Calls [method] (e.g. Greeter.Hello) of [service] with [json] as the request",
		"health [service] - Asks every node of [service] for its health, with latency",
	} {
		if !slices.Contains(strings.Split(help, "\n"), line) {
			t.Errorf("help does not list %q:\n%s", line, help)
		}
	}

	services := "5 services:\ngo.micro.bot.echo (1 node)\ngo.micro.bot.note (1 node)\ngo.micro.bot.query (1 node)\ngo.micro.bot.registry (1 node)\ngreeter (1 node)"
	eventually(t, in, "list services", func(r reply) bool { return r.text == services })

	// botmesh's NATS transport answers a request sent again once.
	replay := ""
	if transportName == "nats" {
		replay = "botmesh-replay=1, "
	}
	meta := fmt.Sprintf("%sbroker=memory, protocol=mucp, registry=%s, server=mucp, transport=%s", replay, registryName, transportName)
	ok("get service greeter", "greeter\nversion 1.0.0\n1 node:\n• greeter-ID\n  address: ADDRESS\n  metadata: "+meta+
		"\n1 endpoint:\n• Greeter.Hello\n  request: HelloRequest {name string}\n  response: HelloResponse {message string}")
	fails("get service greter", `get service: unknown service "greter". Did you mean "greeter"? Type list services to see them all.`)
	fails("get service", "get service: which service? Usage: get service [name] (list services shows the names)")

	// Register, list shows it, deregister, it is gone.
	confirm(`register service {"name":"billing","version":"2.1.0","nodes":[{"id":"billing-1","address":"10.0.0.5:9090","metadata":{"zone":"a"}}]}`)
	ok("yes",
		"Registered billing version 2.1.0 with 1 node: billing-1 at 10.0.0.5:9090.\nWith the "+registryName+" registry it stays registered while this registry service runs.")
	eventually(t, in, "list services", func(r reply) bool {
		return r.text == "6 services:\nbilling (1 node)\ngo.micro.bot.echo (1 node)\ngo.micro.bot.note (1 node)\ngo.micro.bot.query (1 node)\ngo.micro.bot.registry (1 node)\ngreeter (1 node)"
	})
	ok("get service billing", "billing\nversion 2.1.0\n1 node:\n• billing-1\n  address: 10.0.0.5:9090\n  metadata: zone=a\nno endpoints listed")
	confirm(`deregister service {"name":"billing","nodes":[{"id":"billing-1"}]}`)
	ok("yes", "Deregistered billing: 1 node (billing-1). It has no nodes left.")
	eventually(t, in, "list services", func(r reply) bool { return r.text == services })
	fails("get service billing", `get service: unknown service "billing". Type list services to see them all.`)
	// Bad input is refused before any confirmation is asked.
	fails(`register service {"name":"billing","nodes":[{"id":"b-1","address":"10.0.0.5:9090"}]`,
		"register service: malformed JSON at line 1, column 67: the JSON ends too early: a closing } ] or \" is missing (near `.0.5:9090\"}]`)")
	fails("register service garbage", `register service: "garbage" is not a definition: a definition is a go-micro service in JSON, e.g. {"name":"billing","version":"1.0.0","nodes":[{"id":"billing-1","address":"10.0.0.5:9090"}]}`)
	fails(`deregister service {"name":"billing","nodes":[{"id":"billing-9"}]}`, `deregister service: unknown service "billing". Type list services to see them all.`)
	fails("yes", "nothing to confirm: you have no command waiting here (they wait 1m0s)")

	// query a go-micro service with protobuf handlers, with JSON.
	ok(`query greeter Greeter.Hello {"name":"Ada"}`, "{\n  \"message\": \"Hello, Ada!\"\n}")
	fails(`query greeter Greeter.Hello {"name":"Ada"`, "query: malformed JSON at line 1, column 14: the JSON ends too early: a closing } ] or \" is missing (near `\"name\":\"Ada\"`)")
	fails(`query greeter Greeter.Bye {}`, `query: greeter has no method "Greeter.Bye". Its methods: Greeter.Hello`)
	fails(`query greeter Greeter.Hello {}`, "query: greeter refused the request (bad request): name is required")
	fails(`query greetr Greeter.Hello {}`, `query: unknown service "greetr". Did you mean "greeter"? Type list services to see them all.`)

	// health of a running service, then with a node that died (its
	// registration made from chat, its process gone; nodes are listed by
	// id, and its id sorts before the live node's random one).
	// health shows where a node is as a user can use it: a NATS node
	// has no address outside NATS.
	at := map[string]string{"nats": "over NATS", "http": "ADDRESS (http)"}[transportName]
	ok("health greeter", "greeter: its node is healthy\n• greeter-ID: ok (LATENCY)\n  address: "+at)
	ok("health go.micro.bot.echo", "go.micro.bot.echo: its node is healthy\n• go.micro.bot.echo-ID: ok (LATENCY)\n  address: "+at)
	confirm(fmt.Sprintf(`register service {"name":"greeter","version":"1.0.0","nodes":[{"id":"greeter-00000000-dead","address":%q}]}`, deadAddress))
	ok("yes",
		"Registered greeter version 1.0.0 with 1 node: greeter-00000000-dead at "+normal(deadAddress)+".\nWith the "+registryName+" registry it stays registered while this registry service runs.")
	eventually(t, in, "list services", func(r reply) bool { return strings.Contains(r.text, "greeter (2 nodes)") })
	r := chat(t, in, "health greeter")
	unreachable := map[string]string{
		"nats": "nothing answers at its address (NATS: no responders); its process is probably gone",
		"http": "nothing listens at its address (connection refused); its process is probably gone",
	}[transportName]
	// The dead node was registered by hand, without the metadata that
	// names its transport.
	deadAt := map[string]string{"nats": "over NATS", "http": "ADDRESS"}[transportName]
	if got, want := normal(r.text), "greeter: 1 of 2 nodes are healthy\n• greeter-00000000-dead: unreachable (LATENCY)\n  "+unreachable+"\n  address: "+deadAt+"\n• greeter-ID: ok (LATENCY)\n  address: "+at; got != want || r.isErr {
		t.Errorf("health with a dead node:\n%s\nwant\n%s", r.text, want)
	}
	confirm(`deregister service {"name":"greeter","nodes":[{"id":"greeter-00000000-dead"}]}`)
	ok("yes", "Deregistered greeter: 1 node (greeter-00000000-dead). 1 other node is still registered.")
	ok("health greeter", "greeter: its node is healthy\n• greeter-ID: ok (LATENCY)\n  address: "+at)
	fails("health greter", `health: unknown service "greter". Did you mean "greeter"? Type list services to see them all.`)
}

// The registry and query commands on the NATS registry and transport (the
// defaults), through a router, as a user sees them.
func TestCommandsNATSRegistry(t *testing.T) {
	commandSuite(t, nil, "nats", "nats", "_INBOX.deadnode")
}

// The "done when": the all-in-one as a user runs it, with the
// registry and query commands and the demo greeter, lines on stdin and
// replies on stdout.
func TestAllInOneRegistryAndQuery(t *testing.T) {
	var out, errs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	input := "list services\nget service go.micro.bot.echo\nquery greeter Greeter.Hello {\"name\":\"Ada\"}\nhealth greeter\nhelp\n"
	if err := allinone.Main(ctx, []string{"--log_level", "error", "--data_dir", t.TempDir()}, strings.NewReader(input), &out, &errs); err != nil {
		t.Fatalf("botmesh: %v\nstderr:\n%s", err, errs.String())
	}
	want := strings.Join([]string{
		"5 services:",
		"go.micro.bot.echo (1 node)",
		"go.micro.bot.note (1 node)",
		"go.micro.bot.query (1 node)",
		"go.micro.bot.registry (1 node)",
		"greeter (1 node)",
		"go.micro.bot.echo",
		"version latest",
		"1 node:",
		"• go.micro.bot.echo-ID",
		"  address: ADDRESS",
		"  metadata: botmesh-replay=1, broker=memory, protocol=mucp, registry=nats, server=mucp, transport=nats",
		"2 endpoints:",
		"• Command.Exec",
		"  request: ExecRequest {args []string, caller Peer {id string, name string, team string, bot bool}, conversation Conversation {platform string, channel string, thread string, gateway string, event_id string}, text string, command string, answer Answer {state []uint8}}",
		"  response: ExecResponse {result []uint8, error string, question Question {text string, state []uint8}}",
		"• Command.Help",
		"  request: HelpRequest",
		"  response: HelpResponse {usage string, description string, commands []CommandSpec, secret_args []uint32}",
		"{",
		`  "message": "Hello, Ada!"`,
		"}",
		"greeter: its node is healthy",
		"• greeter-ID: ok (LATENCY)",
		"  address: over NATS",
		"at [time] [zone] [command] - Runs [command] once, at [time] (17:30, or 2026-12-24 17:30; UTC unless [zone], e.g. Europe/Berlin)",
		`cron "S M H DOM MON DOW" [zone] [command] - Runs [command] on a six-field cron expression, seconds first`,
		"deregister service [definition] - Deregisters nodes (name and node ids are enough)",
		"echo [text] - Returns the [text]",
		"every [duration] [command] - Runs [command] every [duration] (at least 1s)",
		"get service [name] - Shows a service's versions, nodes and endpoints",
		"health [service] - Asks every node of [service] for its health, with latency",
		"hello - Returns a greeting",
		"help [command] - Displays help for all known commands, or the usage, description and examples of [command]",
		"in [duration] [command] - Runs [command] once, after [duration] (e.g. in 10m health greeter)",
		"list services - Lists the registered services with their node counts",
		"mail [address] [command] - Runs [command] and mails its result to [address]",
		"note add [text] | note forget [n] - Keeps a note for this conversation, or forgets note [n]",
		"notes - Lists this conversation's notes",
		"ping - Returns pong",
		"query [service] [method] [json] - Calls [method] (e.g. Greeter.Hello) of [service] with [json] as the request",
		"register service [definition] - Registers a service given as go-micro JSON",
		"schedules - Lists this conversation's schedules",
		"tell [conversation] [command] - Runs [command] and posts its result in [conversation] (slack:#ops, irc:#dev, xmpp:ops@conference.example.org?join)",
		"the three laws - Returns the three laws of robotics",
		"time - Returns the server time",
		"unschedule [id] - Removes a schedule you set",
		"unwatch [service] [health] - Stops watching [service] (with health: its health)",
		"watch [service] [health] [n] - Tells this conversation when [service]'s nodes come and go; with health, when its health fails [n] times in a row (default 3) and when it recovers (watch commands: command services added and removed)",
		"watching - Lists what this conversation watches",
	}, "\n") + "\n"
	if got := normal(out.String()); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
}
