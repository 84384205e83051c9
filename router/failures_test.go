package router_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/registry"
)

// handler is a CommandHandler made of functions.
type handler struct {
	help func(*chatopsv1.HelpResponse) error
	exec func(context.Context, *chatopsv1.ExecRequest, *chatopsv1.ExecResponse) error
}

func (h handler) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	if h.help == nil {
		return nil
	}
	return h.help(rsp)
}

func (h handler) Exec(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	return h.exec(ctx, req, rsp)
}

func TestServiceErrors(t *testing.T) {
	e := newEnv(t, router.Config{})
	e.serve("fail", handler{exec: func(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
		if len(req.Args) > 1 && req.Args[1] == "hard" {
			return errors.New("disk on fire")
		}
		if len(req.Args) > 1 && req.Args[1] == "panic" {
			panic("bad handler")
		}
		rsp.Error = "nothing to fail"
		return nil
	}})
	e.serve("quiet", handler{exec: func(context.Context, *chatopsv1.ExecRequest, *chatopsv1.ExecResponse) error { return nil }})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "quiet") })

	for in, want := range map[string]string{
		"fail":       "fail: nothing to fail",
		"fail hard":  "fail: go.micro.bot.fail failed: disk on fire",
		"fail panic": "fail: go.micro.bot.fail failed: command panicked: bad handler",
	} {
		rep := e.ask(in)
		if !isError(rep) || string(rep.GetData()) != want {
			t.Errorf("%q: got %s %q, want error %q", in, rep.GetType(), rep.GetData(), want)
		}
	}
	if rep := e.ask("quiet"); !isReply(rep) || string(rep.GetData()) != "(no output)" {
		t.Errorf("empty result: got %s %q", rep.GetType(), rep.GetData())
	}
	if rep := e.ask("ping"); string(rep.GetData()) != "pong" {
		t.Errorf("router broken after failures: %q", rep.GetData())
	}
}

// A command that never answers gets a timeout reply, and does not hold up
// other messages meanwhile.
func TestSlowServiceTimesOut(t *testing.T) {
	e := newEnv(t, router.Config{Timeout: 700 * time.Millisecond})
	release := make(chan struct{})
	defer close(release)
	calls := make(chan struct{}, 10)
	e.serve("slow", handler{exec: func(ctx context.Context, _ *chatopsv1.ExecRequest, _ *chatopsv1.ExecResponse) error {
		calls <- struct{}{}
		<-release
		return nil
	}})
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "slow") })

	start := time.Now()
	slow, _ := e.send([]byte("slow"))
	<-calls
	// While slow hangs, others are answered at once.
	for _, in := range []string{"ping", "echo still here"} {
		if rep := e.ask(in); !isReply(rep) {
			t.Errorf("%q during a hung command: %s %q", in, rep.GetType(), rep.GetData())
		}
	}
	if time.Since(start) > 600*time.Millisecond {
		t.Logf("note: answers during the hung command took %s", time.Since(start))
	}
	rep := e.await(slow, 5*time.Second)
	if !isError(rep) || string(rep.GetData()) != "slow: no answer from go.micro.bot.slow within 700ms" {
		t.Errorf("got %s %q", rep.GetType(), rep.GetData())
	}
	// The hung command was called once: a timeout is never retried.
	select {
	case <-calls:
		t.Error("the hung command was called twice")
	case <-time.After(300 * time.Millisecond):
	}
}

// A node that is registered but gone (killed without deregistering) gets a
// clear error at once, and the live nodes of the same service keep working.
func TestDeadNode(t *testing.T) {
	e := newEnv(t, router.Config{Timeout: 5 * time.Second})
	reg := meshtest.Mesh(t, e.s, nil).Registry()
	ghost := func(name, id string) {
		err := reg.Register(&registry.Service{Name: "go.micro.bot." + name, Version: "latest",
			Nodes: []*registry.Node{{Id: id, Address: nats.NewInbox(), Metadata: map[string]string{"protocol": "mucp"}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	ghost("ghost", "ghost-1")
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "ghost") })
	start := time.Now()
	rep := e.ask("ghost")
	if !isError(rep) || !strings.HasPrefix(string(rep.GetData()), "ghost: could not reach go.micro.bot.ghost") {
		t.Errorf("got %s %q", rep.GetType(), rep.GetData())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dead node took %s to report; want well under the 5s timeout", d)
	}

	// echo with one live node and one dead one: every call succeeds.
	e.serve("echo", echo.Handler{})
	ghost("echo", "echo-dead")
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "echo") })
	for i := range 20 {
		if rep := e.ask("echo x"); !isReply(rep) || string(rep.GetData()) != "x" {
			t.Fatalf("call %d with a dead node: %s %q", i, rep.GetType(), rep.GetData())
		}
	}
}

// Stopping a command service lets the requests it is serving finish: the
// user gets the answer, not an error.
func TestServiceStopDrainsRequests(t *testing.T) {
	e := newEnv(t, router.Config{Timeout: 10 * time.Second})
	entered := make(chan struct{}, 1)
	stop := e.serve("slowpoke", handler{exec: func(_ context.Context, _ *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
		entered <- struct{}{}
		time.Sleep(500 * time.Millisecond)
		rsp.Result = []byte("finished")
		return nil
	}})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "slowpoke") })
	sub, _ := e.send([]byte("slowpoke"))
	<-entered
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	rep := e.await(sub, 5*time.Second)
	if !isReply(rep) || string(rep.GetData()) != "finished" {
		t.Errorf("request in flight during stop: %s %q", rep.GetType(), rep.GetData())
	}
	<-stopped
	if rep := e.ask("slowpoke"); !isError(rep) {
		t.Errorf("after stop: %s %q", rep.GetType(), rep.GetData())
	}
}

// A command can have its own timeout, longer or shorter than the default.
func TestCommandTimeouts(t *testing.T) {
	var to router.Timeouts
	if err := to.Set("slow=1500ms, quick = 300ms"); err != nil {
		t.Fatal(err)
	}
	if err := (&router.Timeouts{}).Set("slow"); err == nil {
		t.Error("a timeout without a duration was accepted")
	}
	e := newEnv(t, router.Config{Timeout: 700 * time.Millisecond, CommandTimeouts: to})
	sleep := func(d time.Duration) handler {
		return handler{exec: func(ctx context.Context, _ *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
			select {
			case <-time.After(d):
				rsp.Result = []byte("done")
				return nil
			case <-ctx.Done():
				// As a service should: its deadline can pass a moment
				// before the router's, and it says so.
				return ctx.Err()
			}
		}}
	}
	e.serve("slow", sleep(time.Second))  // over the default, under its own
	e.serve("quick", sleep(time.Second)) // over its own
	waitFor(t, func() bool {
		h := string(e.ask("help").GetData())
		return strings.Contains(h, "slow") && strings.Contains(h, "quick")
	})
	if rep := e.ask("slow"); !isReply(rep) || string(rep.GetData()) != "done" {
		t.Errorf("slow with its 1.5s timeout: %s %q", rep.GetType(), rep.GetData())
	}
	if rep := e.ask("quick"); !isError(rep) || string(rep.GetData()) != "quick: no answer from go.micro.bot.quick within 300ms" {
		t.Errorf("quick with its 300ms timeout: %s %q", rep.GetType(), rep.GetData())
	}
}
