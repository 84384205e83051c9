package router_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nats.go/jetstream"
	dbgpb "go-micro.dev/v4/debug/proto"
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
// else came with it. It returns how long it waited.
func (c *chat) expectOnce(want string) time.Duration {
	c.e.t.Helper()
	return c.expectOnceLike(regexp.MustCompile("^" + regexp.QuoteMeta(want) + "$"))
}

// expectOnceLike waits for an announcement that matches want and checks
// that it came once and nothing else came with it. It returns how long it
// waited.
func (c *chat) expectOnceLike(want *regexp.Regexp) time.Duration {
	c.e.t.Helper()
	start := time.Now()
	var got []string
	for time.Since(start) < 20*time.Second && len(got) == 0 {
		got = append(got, c.announcements(100*time.Millisecond)...)
	}
	took := time.Since(start)
	// Any copy from another router would come within a look or two.
	got = append(got, c.announcements(2*time.Second+2*time.Second)...)
	if len(got) != 1 || !want.MatchString(got[0]) {
		c.e.t.Fatalf("announcements %q, want one that matches %s, once", got, want)
	}
	c.e.t.Logf("%q announced once, within %s of the change", got[0], took.Round(100*time.Millisecond))
	return took
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
		"watch":            "usage: watch SERVICE (its nodes), watch SERVICE health [N] (told when its health fails N times in a row, default 3), or watch commands (command services added and removed)",
		"unwatch greeter":  "this conversation does not watch greeter (watching lists what it watches)",
		"watching greeter": "usage: watching (lists what this conversation watches)",
		"watch a b":        "usage: watch SERVICE (its nodes), watch SERVICE health [N] (told when its health fails N times in a row, default 3), or watch commands (command services added and removed)",
	} {
		if rep := c.say(in); !isError(rep) || string(rep.GetData()) != want {
			t.Errorf("%q: %s %q, want %q", in, rep.GetType(), rep.GetData(), want)
		}
	}
}

// Debug is a go-micro Debug handler (the endpoint the health command and
// health watches call) whose Health answers the status the test sets, or,
// while it is "hang", nothing until the caller gives up.
type Debug struct{ status atomic.Pointer[string] }

func (d *Debug) set(status string) { d.status.Store(&status) }

func (d *Debug) Health(ctx context.Context, _ *dbgpb.HealthRequest, rsp *dbgpb.HealthResponse) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s := *d.status.Load(); s != "hang" {
			rsp.Status = s
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// serveHealth starts a real go-micro service called name on a mesh of its
// own (as its own process would), serving the Debug handler d, healthy at
// first; it returns its node id and a func that stops it.
func (e *env) serveHealth(name string, d *Debug) (string, func()) {
	e.t.Helper()
	d.set("ok")
	m := meshtest.Mesh(e.t, e.s, nil)
	srv := m.NewServer(name)
	if err := srv.Handle(srv.NewHandler(d)); err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// go-micro v4's server races (a WaitGroup's Add against its Wait)
		// when it stops with a request under way: it leaves the
		// registry first, so that no call comes, and the calls under
		// way end before it stops.
		if err := srv.(interface{ Deregister() error }).Deregister(); err != nil {
			e.t.Errorf("deregister %s: %v", name, err)
		}
		d.set("ok")
		time.Sleep(200 * time.Millisecond)
		if err := srv.Stop(); err != nil {
			e.t.Errorf("stop %s: %v", name, err)
		}
	}
	e.t.Cleanup(stop)
	id := name + "-" + srv.Options().Id
	meshtest.WaitRegistered(e.t, m.Registry(), name, id)
	return id, stop
}

// healthEvery is the health watches' interval in these tests.
const healthEvery = time.Second

// With three routers, a watched service whose health starts failing is
// announced once, after three failed checks in a row (the default), and
// its recovery once; after unwatch nothing is told.
func TestWatchHealthAnnouncesOnceWithThreeRouters(t *testing.T) {
	s := meshtest.NATS(t)
	cfg := router.Config{WatchHealthEvery: healthEvery}
	e := newEnvOn(t, s, cfg)
	newEnvOn(t, s, cfg)
	newEnvOn(t, s, cfg)
	d := &Debug{}
	node, _ := e.serveHealth("payments", d)
	c := e.chat("U1", "C1")
	if got := string(c.say("watch payments health").GetData()); got != "watching the health of payments (healthy now; checked every 1s): this conversation is told when it fails 3 times in a row and when it recovers. To stop: unwatch payments health" {
		t.Fatalf("watch payments health: %q", got)
	}
	if got := c.announcements(3 * healthEvery); len(got) != 0 {
		t.Fatalf("a healthy service was announced: %q", got)
	}
	d.set("degraded")
	// Three checks a second apart take two seconds at least.
	if took := c.expectOnce(fmt.Sprintf("watch: payments: health failed 3 times in a row: %s: status \"degraded\"", node)); took < 2*healthEvery {
		t.Errorf("announced %s after the service became unhealthy: before its third failed check", took)
	}
	if got := string(c.say("watching").GetData()); !regexp.MustCompile(`^this conversation watches: the health of payments \([3-9] failed checks in a row: payments-[^ ]+: status "degraded"; told after 3\)$`).MatchString(got) {
		t.Errorf("watching: %q", got)
	}
	d.set("ok")
	c.expectOnceLike(regexp.MustCompile(`^watch: payments: healthy again, after [3-9] failed checks in a row$`))
	if got := string(c.say("watching").GetData()); got != "this conversation watches: the health of payments (healthy; told after 3 failed checks in a row)" {
		t.Errorf("watching: %q", got)
	}
	if got := string(c.say("unwatch payments health").GetData()); got != "stopped watching the health of payments" {
		t.Fatalf("unwatch payments health: %q", got)
	}
	d.set("degraded")
	if got := c.announcements(5 * healthEvery); len(got) != 0 {
		t.Errorf("after unwatch: %q", got)
	}
}

// The count of failures in a row lives in NATS: when every router is
// replaced mid-count, the new ones go on from it (it never goes back), and
// the failure is told once when it reaches N. A node that does not answer
// and a service with no node are failures too, with their reasons.
func TestWatchHealthCountSurvivesRouterReplacement(t *testing.T) {
	s := meshtest.NATS(t)
	cfg := router.Config{WatchHealthEvery: healthEvery}
	routers := []*env{newEnvOn(t, s, cfg), newEnvOn(t, s, cfg)}
	e := routers[0]
	d := &Debug{}
	node, stop := e.serveHealth("payments", d)
	c := e.chat("U1", "C1")
	if got := string(c.say("watch payments health 5").GetData()); !strings.HasPrefix(got, "watching the health of payments (healthy now; checked every 1s): this conversation is told when it fails 5 times in a row") {
		t.Fatalf("watch payments health 5: %q", got)
	}
	d.set("hang")
	count := func() int {
		t.Helper()
		got := string(c.say("watching").GetData())
		if strings.HasPrefix(got, "this conversation watches: the health of payments (healthy") {
			return 0
		}
		m := regexp.MustCompile(`^this conversation watches: the health of payments \(([0-9]+) failed check`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("watching: %q", got)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	before := 0
	for deadline := time.Now().Add(20 * time.Second); before < 2; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the count is %d after 20s, want 2", before)
		}
		before = count()
	}
	for _, r := range routers {
		r.stopRouter()
	}
	newEnvOn(t, s, cfg)
	newEnvOn(t, s, cfg)
	last := before
	for deadline := time.Now().Add(20 * time.Second); last < 4; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the count is %d 20s after the routers were replaced", last)
		}
		n := count()
		if n < last {
			t.Fatalf("the count went from %d to %d after the routers were replaced (it was %d before)", last, n, before)
		}
		last = n
	}
	if got := c.announcements(100 * time.Millisecond); len(got) != 0 {
		t.Fatalf("announced before the fifth failed check: %q", got)
	}
	c.expectOnce(fmt.Sprintf("watch: payments: health failed 5 times in a row: %s: no answer within 500ms", node))

	// Recovered, then gone: a service with no node fails too.
	d.set("ok")
	c.expectOnceLike(regexp.MustCompile(`^watch: payments: healthy again, after ([5-9]|1[0-9]) failed checks in a row$`))
	stop()
	c.expectOnce("watch: payments: health failed 5 times in a row: it has no node")
}

// Bad input to the health watch gets a sentence; nothing is watched.
func TestWatchHealthBadInput(t *testing.T) {
	e := newEnv(t, router.Config{})
	c := e.chat("U1", "C1")
	nHelp := "usage: watch SERVICE health [N]: N is how many failed checks in a row are told, a whole number from 1 to 100 (default 3), not "
	for in, want := range map[string]string{
		"watch greeter health 0":     nHelp + `"0"`,
		"watch greeter health 101":   nHelp + `"101"`,
		"watch greeter health -2":    nHelp + `"-2"`,
		"watch greeter health three": nHelp + `"three"`,
		"watch greeter health 3 4":   nHelp + `"3 4"`,
		"watch greeter healthy":      "usage: watch SERVICE (its nodes), watch SERVICE health [N] (told when its health fails N times in a row, default 3), or watch commands (command services added and removed)",
		"watch commands health":      "watch commands has no health: watch SERVICE health [N] watches one service's health",
		"unwatch greeter health":     "this conversation does not watch the health of greeter (watching lists what it watches)",
		"unwatch greeter health 3":   "usage: unwatch SERVICE, unwatch SERVICE health, or unwatch commands (watching lists what this conversation watches)",
	} {
		if rep := c.say(in); !isError(rep) || string(rep.GetData()) != want {
			t.Errorf("%q: %s %q, want %q", in, rep.GetType(), rep.GetData(), want)
		}
	}
	if got := string(c.say("watching").GetData()); !strings.HasPrefix(got, "this conversation watches nothing.") {
		t.Errorf("watching after bad input: %q", got)
	}
	if got := string(c.say("watch greeter health 1").GetData()); got != "watching the health of greeter (not healthy now: it has no node; checked every 10s): this conversation is told when it fails once and when it recovers. To stop: unwatch greeter health" {
		t.Errorf("watch greeter health 1: %q", got)
	}
	if rep := c.say("watch greeter health"); !isError(rep) || string(rep.GetData()) != "this conversation watches the health of greeter already (watching lists what it watches)" {
		t.Errorf("watch greeter health again: %s %q", rep.GetType(), rep.GetData())
	}
}
