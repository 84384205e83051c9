package router_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"
)

// env is a NATS server with a router on it, and a client connection that
// plays the gateway.
type env struct {
	t    *testing.T
	s    *server.Server
	nc   *nats.Conn
	r    *router.Router
	core bool // core NATS delivery (else JetStream, the default)
	// stopRouter stops the router (once; also at the end of the test).
	stopRouter func()
}

func newEnv(t *testing.T, cfg router.Config) *env {
	t.Helper()
	return newEnvOn(t, meshtest.NATS(t), cfg)
}

// newEnvOn starts a router on the NATS server s, its mesh made with opts.
func newEnvOn(t *testing.T, s *server.Server, cfg router.Config, opts ...mesh.Option) *env {
	t.Helper()
	m := meshtest.Mesh(t, s, nil, opts...)
	r, err := router.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = r.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			if runErr != nil {
				t.Errorf("router Run: %v", runErr)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-r.Ready():
	case <-done:
		t.Fatalf("router stopped: %v", runErr)
	case <-time.After(10 * time.Second):
		t.Fatal("router not ready after 10s")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &env{t: t, s: s, nc: nc, r: r, core: cfg.Delivery == durable.Core, stopRouter: stop}
}

// serve starts a command service on its own mesh (as a separate process
// would) and returns a func that stops it.
func (e *env) serve(name string, h chatopsv1.CommandHandler) func() {
	e.t.Helper()
	m := meshtest.Mesh(e.t, e.s, nil)
	svc, err := command.New(m, name, h)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		e.t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if err := svc.Stop(); err != nil {
				e.t.Errorf("stop %s: %v", name, err)
			}
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// send publishes text as a gateway would and returns the reply subject.
func (e *env) send(text []byte) (*nats.Subscription, string) {
	e.t.Helper()
	// A gateway instance of its own: the subscription takes the final
	// reply and the progress notes (one token deeper).
	instance := nuid.Next()
	reply := chatopsv1.ReplySubject("test", instance, "1")
	sub, err := e.nc.SubscribeSync(chatopsv1.SubjectOut("test", instance))
	if err != nil {
		e.t.Fatal(err)
	}
	ev := &chatopsv1.Event{
		Id: nuid.Next(), Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE,
		From: &chatopsv1.Peer{Id: "U1", Name: "ada"}, To: "C1", Thread: "T1",
		Data: text, Platform: "test", Gateway: "testgw", ReplyTo: reply,
		Meta: map[string]string{"k": "v"},
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	msg := &nats.Msg{Subject: chatopsv1.SubjectIn("test"), Data: data}
	if e.core {
		// As a core gateway does; with JetStream the stream would answer
		// the reply subject with its publish acknowledgement.
		msg.Reply = reply
	}
	if err := e.nc.PublishMsg(msg); err != nil {
		e.t.Fatal(err)
	}
	return sub, ev.Id
}

func (e *env) await(sub *nats.Subscription, within time.Duration) *chatopsv1.Event {
	e.t.Helper()
	msg, err := sub.NextMsg(within)
	if err != nil {
		e.t.Fatalf("no reply within %s: %v", within, err)
	}
	rep := &chatopsv1.Event{}
	if err := proto.Unmarshal(msg.Data, rep); err != nil {
		e.t.Fatalf("reply does not decode: %v", err)
	}
	return rep
}

// ask sends text and returns the reply.
func (e *env) ask(text string) *chatopsv1.Event {
	e.t.Helper()
	sub, id := e.send([]byte(text))
	rep := e.await(sub, 10*time.Second)
	if rep.GetInReplyTo() != id {
		e.t.Errorf("reply to %q has in_reply_to %q, want %q", text, rep.GetInReplyTo(), id)
	}
	return rep
}

func isReply(e *chatopsv1.Event) bool { return e.GetType() == chatopsv1.EventType_EVENT_TYPE_REPLY }
func isError(e *chatopsv1.Event) bool { return e.GetType() == chatopsv1.EventType_EVENT_TYPE_ERROR }

func TestBuiltinsAndEcho(t *testing.T) {
	e := newEnv(t, router.Config{})
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "echo [text]") })

	tests := []struct {
		in, want string
	}{
		{"ping", "pong"},
		{"PING", "pong"},
		{"hello", "hey what's up?"},
		{"the three laws", "1. A robot may not injure a human being or, through inaction, allow a human being to come to harm.\n2. A robot must obey the orders given it by human beings except where such orders would conflict with the First Law.\n3. A robot must protect its own existence as long as such protection does not conflict with the First or Second Laws."},
		{"echo hi there", "hi there"},
		{"  echo   hi  ", "hi"},
		{"echo", "echo what?"},
		{"Echo Mixed Case", "Mixed Case"},
	}
	for _, tc := range tests {
		rep := e.ask(tc.in)
		if !isReply(rep) || string(rep.GetData()) != tc.want {
			t.Errorf("%q: got %s %q, want reply %q", tc.in, rep.GetType(), rep.GetData(), tc.want)
		}
	}
	rep := e.ask("time")
	if !strings.HasPrefix(string(rep.GetData()), "Server time is: ") {
		t.Errorf("time: %q", rep.GetData())
	}
	// The reply goes back where the message came from.
	if rep.GetTo() != "C1" || rep.GetThread() != "T1" || rep.GetGateway() != "testgw" || rep.GetPlatform() != "test" || rep.GetMeta()["k"] != "v" || !rep.GetFrom().GetBot() {
		t.Errorf("reply routing fields wrong: %+v", rep)
	}

	help := string(e.ask("help").GetData())
	want := []string{
		"at [time] [zone] [command] - Runs [command] once, at [time] (17:30, or 2026-12-24 17:30; UTC unless [zone], e.g. Europe/Berlin)",
		`cron "S M H DOM MON DOW" [zone] [command] - Runs [command] on a six-field cron expression, seconds first`,
		"echo [text] - Returns the [text]",
		"every [duration] [command] - Runs [command] every [duration] (at least 1s)",
		"hello - Returns a greeting",
		"help [command] - Displays help for all known commands, or the usage, description and examples of [command]",
		"in [duration] [command] - Runs [command] once, after [duration] (e.g. in 10m health greeter)",
		"mail [address] [command] - Runs [command] and mails its result to [address]",
		"ping - Returns pong",
		"schedules - Lists this conversation's schedules",
		"tell [conversation] [command] - Runs [command] and posts its result in [conversation] (slack:#ops, irc:#dev, xmpp:ops@conference.example.org?join)",
		"the three laws - Returns the three laws of robotics",
		"time - Returns the server time",
		"unschedule [id] - Removes a schedule you set",
		"unwatch [service] [health] - Stops watching [service] (with health: its health)",
		"watch [service] [health] [n] - Tells this conversation when [service]'s nodes come and go; with health, when its health fails [n] times in a row (default 3) and when it recovers (watch commands: command services added and removed)",
		"watching - Lists what this conversation watches",
	}
	if got := strings.Split(help, "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("help =\n%s\nwant\n%s", help, strings.Join(want, "\n"))
	}
}

func TestUnknownCommand(t *testing.T) {
	e := newEnv(t, router.Config{})
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "echo") })
	for in, want := range map[string]string{
		"ecko hi":  `unknown command "ecko". Did you mean "echo"? Type help for the list of commands.`,
		"pnig":     `unknown command "pnig". Did you mean "ping"? Type help for the list of commands.`,
		"deploy x": `unknown command "deploy x". Type help for the list of commands.`,
	} {
		rep := e.ask(in)
		if !isError(rep) || string(rep.GetData()) != want {
			t.Errorf("%q: got %s %q, want error %q", in, rep.GetType(), rep.GetData(), want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 15*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("condition not met within 15s")
	return 0
}

var _ = errors.New
var _ = mesh.DefaultNamespace

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
