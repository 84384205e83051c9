package router_test

import (
	"context"
	"strings"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nats.go/jetstream"
	"go-micro.dev/v4/registry"
	"google.golang.org/protobuf/proto"
)

// node registers one node of service on a mesh of its own and returns a
// func that removes it. (A node killed with -9 is e2e's: the NATS
// registry's connection is the process's own.)
func (e *env) node(service, id string) func() {
	e.t.Helper()
	reg := meshtest.Mesh(e.t, e.s, nil).Registry()
	svc := &registry.Service{Name: service, Version: "latest", Nodes: []*registry.Node{{Id: id, Address: "127.0.0.1:1"}}}
	if err := reg.Register(svc); err != nil {
		e.t.Fatal(err)
	}
	return func() {
		if err := reg.Deregister(svc); err != nil {
			e.t.Fatal(err)
		}
	}
}

// announcements collects what the conversation's gateway would post
// unasked within d: what the platform's reply stream keeps on the chat's
// outbound subjects (every router that sees a change publishes it, and the
// stream keeps it once; gateways read the stream).
func (c *chat) announcements(d time.Duration) []string {
	c.e.t.Helper()
	if c.outbound == nil {
		js, err := jetstream.New(c.e.nc)
		if err != nil {
			c.e.t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cons, err := js.OrderedConsumer(ctx, durable.ReplyStream("test"), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{durable.OutboundSubject(chatopsv1.SubjectOutFinal("test", c.instance))},
		})
		if err != nil {
			c.e.t.Fatal(err)
		}
		c.outbound = cons
	}
	var got []string
	deadline := time.Now().Add(d)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return got
		}
		batch, err := c.outbound.Fetch(16, jetstream.FetchMaxWait(max(wait, 100*time.Millisecond)))
		if err != nil {
			c.e.t.Fatal(err)
		}
		for m := range batch.Messages() {
			ev := &chatopsv1.Event{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				c.e.t.Fatal(err)
			}
			if !strings.HasPrefix(ev.GetInReplyTo(), "watch-") {
				continue // a scheduled result
			}
			if ev.GetTo() != c.to || ev.GetType() != chatopsv1.EventType_EVENT_TYPE_REPLY {
				c.e.t.Errorf("announcement to %q, %s: %q", ev.GetTo(), ev.GetType(), ev.GetData())
			}
			got = append(got, string(ev.GetData()))
		}
	}
}

// expectOnce waits for want and checks that it came once and nothing
// else came with it.
func (c *chat) expectOnce(want string) {
	c.e.t.Helper()
	start := time.Now()
	var got []string
	for time.Since(start) < 20*time.Second && !contains(got, want) {
		got = append(got, c.announcements(100*time.Millisecond)...)
	}
	took := time.Since(start)
	// Any copy from another router would come within a look or two.
	got = append(got, c.announcements(2*time.Second+2*time.Second)...)
	if len(got) != 1 || got[0] != want {
		c.e.t.Fatalf("announcements %q, want [%q] once", got, want)
	}
	c.e.t.Logf("%q announced once, within %s of the change", want, took.Round(100*time.Millisecond))
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// With three routers, each change of a watched service is announced to
// the conversation once: a node added, a node gone, the last node gone, a
// node back. The watch list outlives every router; unwatch
// stops the announcements.
func TestWatchAnnouncesOnceWithThreeRouters(t *testing.T) {
	s := meshtest.NATS(t)
	routers := []*env{newEnvOn(t, s, router.Config{}), newEnvOn(t, s, router.Config{}), newEnvOn(t, s, router.Config{})}
	e := routers[0]
	a := e.node("greeter", "greeter-a")
	c := e.chat("U1", "C1")
	if got := string(c.say("watch greeter").GetData()); !strings.HasPrefix(got, "watching greeter (1 node now): this conversation is told when it loses its last node") {
		t.Fatalf("watch greeter: %q", got)
	}
	if rep := c.say("watch greeter"); !isError(rep) || string(rep.GetData()) != "this conversation watches greeter already (watching lists what it watches)" {
		t.Errorf("watch greeter again: %s %q", rep.GetType(), rep.GetData())
	}
	b := e.node("greeter", "greeter-b")
	c.expectOnce("watch: greeter now has 2 nodes (it had 1 node)")
	b()
	c.expectOnce("watch: greeter now has 1 node (it had 2 nodes)")

	// Every router is replaced: the watch list is in NATS.
	for _, r := range routers {
		r.stopRouter()
	}
	newEnvOn(t, s, router.Config{})
	newEnvOn(t, s, router.Config{})
	a()
	c.expectOnce("watch: greeter lost its last node (it had 1 node): it is down")
	e.node("greeter", "greeter-c")
	c.expectOnce("watch: greeter is back: 1 node")
	if got := string(c.say("watching").GetData()); got != "this conversation watches: greeter (1 node)" {
		t.Errorf("watching: %q", got)
	}
	if got := string(c.say("unwatch greeter").GetData()); got != "stopped watching greeter" {
		t.Fatalf("unwatch greeter: %q", got)
	}
	e.node("greeter", "greeter-d")
	if got := c.announcements(3 * watchLook); len(got) != 0 {
		t.Errorf("after unwatch: %q", got)
	}
	if got := string(c.say("watching").GetData()); !strings.HasPrefix(got, "this conversation watches nothing.") {
		t.Errorf("watching after unwatch: %q", got)
	}
}

// watchLook is how often routers look at what is watched (router.watchEvery).
const watchLook = 2 * time.Second

// watch commands announces command services added and removed; another
// conversation that watches nothing hears nothing.
func TestWatchCommands(t *testing.T) {
	s := meshtest.NATS(t)
	e := newEnvOn(t, s, router.Config{})
	newEnvOn(t, s, router.Config{})
	c := e.chat("U1", "C1")
	other := e.chat("U2", "C2")
	if got := string(c.say("watch commands").GetData()); got != "watching the command services (none now): this conversation is told when one is added or removed. To stop: unwatch commands" {
		t.Fatalf("watch commands: %q", got)
	}
	stop := e.serve("echo", echo.Handler{})
	c.expectOnce("watch: new command service: echo")
	stop()
	c.expectOnce("watch: command service removed: echo")
	if got := other.announcements(100 * time.Millisecond); len(got) != 0 {
		t.Errorf("a conversation that watches nothing got %q", got)
	}
	for in, want := range map[string]string{
		"watch":            "usage: watch SERVICE (its nodes), or watch commands (command services added and removed)",
		"unwatch greeter":  "this conversation does not watch greeter (watching lists what it watches)",
		"watching greeter": "usage: watching (lists what this conversation watches)",
		"watch a b":        "usage: watch SERVICE (its nodes), or watch commands (command services added and removed)",
	} {
		if rep := c.say(in); !isError(rep) || string(rep.GetData()) != want {
			t.Errorf("%q: %s %q, want %q", in, rep.GetType(), rep.GetData(), want)
		}
	}
}
