package e2e

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/internal/allinone"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
)

type handler struct {
	usage string
	exec  func(context.Context, *chatopsv1.ExecRequest, *chatopsv1.ExecResponse) error
}

func (h handler) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	rsp.Usage = h.usage
	return nil
}

func (h handler) Exec(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	return h.exec(ctx, req, rsp)
}

// runAllInOne runs the all-in-one (embedded NATS, router, the services, a
// gateway) with inputs until the test ends, and returns the NATS URL of its
// embedded server once messages are answered.
func runAllInOne(t *testing.T, cfg allinone.Config, log *slog.Logger, inputs ...adapter.Input) string {
	t.Helper()
	if cfg.NATSHost == "" {
		cfg.NATSHost, cfg.NATSPort = "127.0.0.1", -1
	}
	if cfg.Mesh.NATSURL == "" {
		cfg.Mesh = mesh.DefaultConfig()
	}
	if log == nil {
		log = meshtest.Logger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- allinone.Run(ctx, cfg, inputs, log, func(u string) { urls <- u }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("all-in-one: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("all-in-one did not stop within 30s")
		}
	})
	select {
	case u := <-urls:
		return u
	case err := <-done:
		t.Fatalf("all-in-one stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("all-in-one not ready after 30s")
	}
	return ""
}

// startAllInOne runs the all-in-one with a test input and returns the input
// and the NATS URL of its embedded server.
func startAllInOne(t *testing.T, rcfg router.Config) (*adaptertest.Input, string) {
	t.Helper()
	in := adaptertest.New("test")
	url := runAllInOne(t, allinone.Config{Router: rcfg, Gateway: gateway.Config{ReplyTimeout: rcfg.Timeout + 5*time.Second}}, nil, in)
	return in, url
}

func ask(t *testing.T, in *adaptertest.Input, text string) *chatopsv1.Event {
	t.Helper()
	id := in.Say(text)
	for {
		// A progress note ("working on it…", on a slow machine) is not
		// the answer: the final reply follows it.
		rep := in.Reply(t, 15*time.Second)
		if rep.InReplyTo != id {
			t.Fatalf("reply to %q answers %s, want %s", text, rep.InReplyTo, id)
		}
		if rep.Type != chatopsv1.EventType_EVENT_TYPE_PROGRESS {
			return rep
		}
	}
}

// The whole mesh in one process with real parts: embedded NATS, router,
// echo, gateway bridge; plus a failing and a hung command service that join
// through the embedded NATS as any other process would.
func TestInProcessMesh(t *testing.T) {
	in, url := startAllInOne(t, router.Config{Timeout: time.Second})

	m := meshtest.Mesh(t, nil, func(c *mesh.Config) { c.NATSURL = url })
	release := make(chan struct{})
	defer close(release)
	for name, h := range map[string]handler{
		"broken": {usage: "broken", exec: func(context.Context, *chatopsv1.ExecRequest, *chatopsv1.ExecResponse) error {
			return errors.New("database unreachable")
		}},
		"hang": {usage: "hang", exec: func(ctx context.Context, _ *chatopsv1.ExecRequest, _ *chatopsv1.ExecResponse) error {
			<-release
			return nil
		}},
	} {
		svc, err := command.New(m, name, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
	}

	for _, tc := range []struct{ in, want string }{
		{"ping", "pong"},
		{"echo hi there", "hi there"},
	} {
		if rep := ask(t, in, tc.in); rep.Type != chatopsv1.EventType_EVENT_TYPE_REPLY || string(rep.Data) != tc.want {
			t.Errorf("%q: got %s %q, want %q", tc.in, rep.Type, rep.Data, tc.want)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		help := string(ask(t, in, "help").Data)
		if strings.Contains(help, "broken") && strings.Contains(help, "hang") && strings.Contains(help, "echo [text] - Returns the [text]") && strings.Contains(help, "ping - Returns pong") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("help does not list every command:\n%s", help)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rep := ask(t, in, "ehco hi"); rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || string(rep.Data) != `unknown command "ehco". Did you mean "echo"? Type help for the list of commands.` {
		t.Errorf("unknown command: %s %q", rep.Type, rep.Data)
	}
	if rep := ask(t, in, "broken"); rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || string(rep.Data) != "broken: go.micro.bot.broken failed: database unreachable" {
		t.Errorf("failing service: %s %q", rep.Type, rep.Data)
	}

	hung := in.Say("hang")
	if rep := ask(t, in, "ping"); string(rep.Data) != "pong" {
		t.Errorf("ping during a hung command: %q", rep.Data)
	}
	rep := in.Reply(t, 10*time.Second)
	if rep.InReplyTo != hung || rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || string(rep.Data) != "hang: no answer from go.micro.bot.hang within 1s" {
		t.Errorf("hung service: %s %q (to %s)", rep.Type, rep.Data, rep.InReplyTo)
	}
	if rep := ask(t, in, "echo after the timeout"); string(rep.Data) != "after the timeout" {
		t.Errorf("after the timeout: %q", rep.Data)
	}
}

// The all-in-one as a user runs it: lines on stdin, replies on stdout, exit
// at the end of input.
func TestAllInOneShell(t *testing.T) {
	run := func(t *testing.T, input string) string {
		t.Helper()
		var out, errs bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := allinone.Main(ctx, []string{"--log_level", "error", "--data_dir", t.TempDir()}, strings.NewReader(input), &out, &errs); err != nil {
			t.Fatalf("botmesh: %v\nstderr:\n%s", err, errs.String())
		}
		return out.String()
	}
	t.Run("the README example", func(t *testing.T) {
		got := run(t, "ping\necho hi there\nhelp\n")
		want := "pong\nhi there\n" + strings.Join([]string{
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
		if got != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		input := "\n   \necho one\n" + "echo " + strings.Repeat("y", 1<<20) + "\n" + "echo caf\xe9\n" + "echo two\n"
		got := run(t, input)
		want := "one\nmessage too long: 1048581 bytes; the limit is 65536\ncaf\uFFFD\ntwo\n"
		if got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}
	})
}
