package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/sdk/stream"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// env is a real nats-server with the streams a router makes (inbound with
// its copy to the events stream, slack's reply stream) and the router's
// endpoint that makes processors' consumers.
type env struct {
	s  *server.Server
	nc *nats.Conn
	js jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := meshtest.NATS(t)
	e := &env{s: s, nc: connect(t, s.ClientURL())}
	e.js = meshtest.RouterStreams(t, e.nc, "slack")
	return e
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// say publishes a chat message as a gateway of platform does.
func (e *env) say(t *testing.T, platform, to, id, text string) {
	t.Helper()
	meshtest.Say(t, e.js, &chatopsv1.Event{Id: id, Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, Platform: platform, To: to, Data: []byte(text),
		From: &chatopsv1.Peer{Id: "U1"}, Gateway: "gw1", ReplyTo: chatopsv1.ReplySubject(platform, "gw1", id)})
}

// tally records what a processor's handler got.
type tally struct {
	mu   sync.Mutex
	seen map[string]int
	n    int
}

func newTally() *tally { return &tally{seen: map[string]int{}} }

func (c *tally) add(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[id]++
	c.n++
	return c.n
}

// count reports the events seen once or more, seen twice or more, and
// the ids of want not seen.
func (c *tally) count(want []string) (seen, duplicated int, lost []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range want {
		switch n := c.seen[id]; {
		case n == 0:
			lost = append(lost, id)
		case n > 1:
			duplicated++
		}
	}
	return len(c.seen), duplicated, lost
}

// ids returns the ids seen, in no order.
func (c *tally) ids() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// run runs a processor named name on its own connection until the
// returned stop is called (which waits for Run to return).
func (e *env) run(t *testing.T, name string, f stream.Filter, h stream.Handler) (stop func()) {
	t.Helper()
	p, err := stream.New(connect(t, e.s.ClientURL()), name, stream.WithLogger(meshtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, f, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("processor %s: %v", name, err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("processor %s did not stop within 15s", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// settled waits until every message stored is in the events stream and
// the consumer of processor name has handed out all of it and has nothing unacknowledged: no
// event can come to it any more (only an unacknowledged one is handed out
// again).
func (e *env) settled(t *testing.T, name string) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	var last *jetstream.ConsumerInfo
	for i := 0; i < 600; i++ {
		if !e.copied(ctx) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c, err := e.js.Consumer(ctx, durable.EventsStream, name)
		if err == nil {
			if last, err = c.Info(ctx); err == nil && last.NumPending == 0 && last.NumAckPending == 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("consumer %s never settled: %+v", name, last)
}

// copied reports whether the events stream holds the copy of every
// message the inbound stream stored (the copies follow the stores).
func (e *env) copied(ctx context.Context) bool {
	in, err1 := e.js.Stream(ctx, durable.Stream)
	ev, err2 := e.js.Stream(ctx, durable.EventsStream)
	if err1 != nil || err2 != nil {
		return false
	}
	ii, err1 := in.Info(ctx)
	ei, err2 := ev.Info(ctx)
	return err1 == nil && err2 == nil && ii.State.LastSeq == ei.State.LastSeq
}

// waitConsumer waits until the routers have made processor name's
// consumer (its Run has started reading).
func (e *env) waitConsumer(t *testing.T, name string) {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	for i := 0; i < 300; i++ {
		if _, err := e.js.Consumer(ctx, durable.EventsStream, name); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("consumer %s not made", name)
}

func burstIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ev-%04d", i)
	}
	return ids
}

// sayAll publishes the messages of ids at once, from 16 publishers, as
// several gateways in a burst.
func (e *env) sayAll(t *testing.T, ids []string) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < len(ids); i += 16 {
				e.say(t, "slack", "C1", ids[i], "echo "+ids[i])
			}
		})
	}
	wg.Wait()
}

// routersGetAll checks that the routers' consumer of the inbound stream
// still gets every message: the processors take none from them.
func (e *env) routersGetAll(t *testing.T, n int) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	c, err := durable.EnsureConsumer(ctx, e.js, durable.Stream, jetstream.ConsumerConfig{Durable: durable.Consumer, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for i := 0; i < 50 && len(got) < n; i++ {
		batch, err := c.Fetch(n, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			got[m.Headers().Get(jetstream.MsgIDHeader)] = true
			_ = m.Ack()
		}
	}
	if len(got) != n {
		t.Errorf("the routers got %d of the %d messages", len(got), n)
	}
}

// A processor sees every message of a 1,000-message burst once, and the
// routers still get every one.
func TestBurstSeenOnce(t *testing.T) {
	e := newEnv(t)
	got := newTally()
	e.run(t, "counter", stream.Filter{}, func(_ context.Context, ev *chatopsv1.Event) error {
		got.add(ev.GetId())
		return nil
	})
	e.waitConsumer(t, "counter")
	ids := burstIDs(1000)
	e.sayAll(t, ids)
	e.settled(t, "counter")
	seen, dup, lost := got.count(ids)
	t.Logf("burst of %d: seen %d, duplicated %d, lost %d", len(ids), seen, dup, len(lost))
	if seen != len(ids) || dup != 0 || len(lost) != 0 {
		t.Errorf("seen %d, duplicated %d, lost %d (first: %.5q); want every one once", seen, dup, len(lost), lost)
	}
	e.routersGetAll(t, len(ids))
}

// A processor stopped in the middle of a burst, while more messages come,
// and started again (a new process: a new connection) sees every message
// once over its two runs.
func TestBurstAcrossRestart(t *testing.T) {
	e := newEnv(t)
	got := newTally()
	stopped := make(chan struct{})
	var stopOnce sync.Once
	var stop func()
	stop = e.run(t, "counter", stream.Filter{}, func(_ context.Context, ev *chatopsv1.Event) error {
		if got.add(ev.GetId()) == 300 {
			// Stop from inside, with events of the burst in hand and
			// more on their way.
			stopOnce.Do(func() { go func() { stop(); close(stopped) }() })
		}
		return nil
	})
	e.waitConsumer(t, "counter")
	ids := burstIDs(1000)
	e.sayAll(t, ids[:600])
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the processor did not stop")
	}
	first := len(got.ids())
	// The rest of the burst while it is down.
	e.sayAll(t, ids[600:])
	e.run(t, "counter", stream.Filter{}, func(_ context.Context, ev *chatopsv1.Event) error {
		got.add(ev.GetId())
		return nil
	})
	e.settled(t, "counter")
	seen, dup, lost := got.count(ids)
	t.Logf("burst of %d with a restart after %d: seen %d, duplicated %d, lost %d", len(ids), first, seen, dup, len(lost))
	if first >= 600 {
		t.Errorf("the first run saw %d events before it stopped: it did not stop in the middle", first)
	}
	if seen != len(ids) || dup != 0 || len(lost) != 0 {
		t.Errorf("seen %d, duplicated %d, lost %d (first: %.5q); want every one once", seen, dup, len(lost), lost)
	}
}

// Filters by platform, conversation and command select what the router
// would: a command is the first words, in any case, after "micro".
func TestFilters(t *testing.T) {
	e := newEnv(t)
	msgs := []struct{ platform, to, id, text string }{
		{"slack", "C1", "s1", "deploy api v2"},
		{"slack", "C1", "s2", "Deploy   api v3"},
		{"slack", "C2", "s3", "micro deploy web"},
		{"slack", "C2", "s4", "deployment status"},
		{"slack", "C2", "s5", "echo deploy"},
		{"irc", "#ops", "i1", "list   Services"},
		{"irc", "#ops", "i2", "deploy\u200bdb"},
		{"irc", "#dev", "i3", "list"},
		{"xmpp", "ops@muc", "x1", "ping"},
	}
	cases := []struct {
		name string
		f    stream.Filter
		want []string
	}{
		{"all", stream.Filter{}, []string{"s1", "s2", "s3", "s4", "s5", "i1", "i2", "i3", "x1"}},
		{"platform", stream.Filter{Platform: "irc"}, []string{"i1", "i2", "i3"}},
		{"conversation", stream.Filter{Conversation: "C2"}, []string{"s3", "s4", "s5"}},
		{"command", stream.Filter{Command: "DEPLOY"}, []string{"s1", "s2", "s3", "i2"}},
		{"two-words", stream.Filter{Command: "list services"}, []string{"i1"}},
		{"all-three", stream.Filter{Platform: "slack", Conversation: "C1", Command: "deploy api"}, []string{"s1", "s2"}},
	}
	tallies := map[string]*tally{}
	for _, tc := range cases {
		got := newTally()
		tallies[tc.name] = got
		e.run(t, tc.name, tc.f, func(_ context.Context, ev *chatopsv1.Event) error {
			got.add(ev.GetId())
			return nil
		})
		e.waitConsumer(t, tc.name)
	}
	for _, m := range msgs {
		e.say(t, m.platform, m.to, m.id, m.text)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.settled(t, tc.name)
			got := tallies[tc.name].ids()
			for _, id := range tc.want {
				if got[id] != 1 {
					t.Errorf("%s seen %d times, want once", id, got[id])
				}
				delete(got, id)
			}
			if len(got) != 0 {
				t.Errorf("also seen: %v", got)
			}
		})
	}
}

// A handler's error hands the event out again, a bounded number of times;
// other events go on meanwhile.
func TestHandlerErrorsRetried(t *testing.T) {
	e := newEnv(t)
	got := newTally()
	e.run(t, "flaky", stream.Filter{}, func(_ context.Context, ev *chatopsv1.Event) error {
		n := 0
		got.mu.Lock()
		got.seen[ev.GetId()]++
		n = got.seen[ev.GetId()]
		got.mu.Unlock()
		switch {
		case ev.GetId() == "twice" && n <= 2:
			return errors.New("database busy")
		case ev.GetId() == "never":
			return errors.New("database down")
		}
		return nil
	})
	e.waitConsumer(t, "flaky")
	e.say(t, "slack", "C1", "never", "ping")
	e.say(t, "slack", "C1", "twice", "ping")
	e.say(t, "slack", "C1", "fine", "ping")
	// The retries wait 0.5+1+2+4 s in all for "never".
	e.settled(t, "flaky")
	got2 := got.ids()
	if got2["twice"] != 3 || got2["fine"] != 1 || got2["never"] != durable.ProcessorMaxDeliver {
		t.Errorf("tries: %v; want twice 3, fine 1, never %d", got2, durable.ProcessorMaxDeliver)
	}
}

// A message whose body names another platform than the subject it came
// on (which NATS permissions tie to the gateway) is not handed out.
func TestForgedPlatformDropped(t *testing.T) {
	e := newEnv(t)
	got := newTally()
	e.run(t, "counter", stream.Filter{}, func(_ context.Context, ev *chatopsv1.Event) error {
		got.add(ev.GetId())
		return nil
	})
	e.waitConsumer(t, "counter")
	forged, _ := proto.Marshal(&chatopsv1.Event{Id: "forged", Platform: "irc", To: "#ops", Data: []byte("deploy")})
	if _, err := e.js.PublishMsg(testCtx(t, 5*time.Second), &nats.Msg{Subject: chatopsv1.SubjectIn("slack"), Header: durable.Header("slack", "forged"), Data: forged}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(testCtx(t, 5*time.Second), chatopsv1.SubjectIn("slack"), []byte("not an event \xff\xff")); err != nil {
		t.Fatal(err)
	}
	e.say(t, "slack", "C1", "real", "ping")
	e.settled(t, "counter")
	if ids := got.ids(); len(ids) != 1 || ids["real"] != 1 {
		t.Errorf("handed out %v; want only the real event", ids)
	}
}

// A processor posts to a conversation through the outbound path: the
// event lands in the platform's reply stream, where a gateway's outbound
// consumer reads it.
func TestPostLandsInOutboundStream(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 30*time.Second)
	p, err := stream.New(e.nc, "relay")
	if err != nil {
		t.Fatal(err)
	}
	ev := stream.Message("slack", "C0OPS", "deploy api v2 by alice in #dev")
	ev.Id = "relay-1"
	for range 2 {
		// Twice with one id: stored once.
		if err := p.Post(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Post(ctx, stream.Message("slack", "C0OPS", "second")); err != nil {
		t.Fatal(err)
	}
	name, err := durable.EnsureOutboundConsumer(ctx, e.js, "slack", "gw9", durable.KeepOutboundShared)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.js.Consumer(ctx, durable.ReplyStream("slack"), name)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for m := range batch.Messages() {
		got := &chatopsv1.Event{}
		if err := proto.Unmarshal(m.Data(), got); err != nil {
			t.Fatal(err)
		}
		if !durable.IsOutbound(m.Subject()) || !strings.HasPrefix(m.Subject(), "bot.v1.out.slack.relay.") {
			t.Errorf("subject %s: want an outbound subject of slack, instance relay", m.Subject())
		}
		if got.GetTo() != "C0OPS" || got.GetPlatform() != "slack" || got.GetType() != chatopsv1.EventType_EVENT_TYPE_REPLY || got.GetTime() == nil {
			t.Errorf("posted %v", got)
		}
		texts = append(texts, string(got.GetData()))
		_ = m.Ack()
	}
	if len(texts) != 2 || texts[0] != "deploy api v2 by alice in #dev" || texts[1] != "second" {
		t.Errorf("outbound stream holds %q; want the two posts once each", texts)
	}
}

// Mistakes get a sentence, not a library error, and nothing is posted.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 10*time.Second)
	for _, name := range []string{"", "a.b", "a*", "has space", strings.Repeat("x", 65)} {
		if _, err := stream.New(e.nc, name); err == nil || !strings.Contains(err.Error(), "use 1 to 64 letters, digits") {
			t.Errorf("New(%q): %v", name, err)
		}
	}
	p, err := stream.New(e.nc, "p1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ev   *chatopsv1.Event
		want string
	}{
		{stream.Message("web", "session-1", "hi"), "a web conversation belongs to one gateway process"},
		{stream.Message("slack", "", "hi"), "no conversation to post to"},
		{stream.Message("sl.ack", "C1", "hi"), `platform "sl.ack" is not a platform name`},
	} {
		if err := p.Post(ctx, tc.ev); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Post(%s %q): %v, want %q", tc.ev.GetPlatform(), tc.ev.GetTo(), err, tc.want)
		}
	}
	if err := p.Run(ctx, stream.Filter{Platform: "slack.*"}, nil); err == nil || !strings.Contains(err.Error(), `platform "slack.*" is not a platform name`) {
		t.Errorf("Run with a bad platform: %v", err)
	}
	if err := p.Run(ctx, stream.Filter{Command: "  "}, nil); err == nil || !strings.Contains(err.Error(), "blank") {
		t.Errorf("Run with a blank command: %v", err)
	}
	// A request the routers refuse (a processor that skips the SDK).
	err = durable.RequestProcessorConsumer(ctx, e.nc, "p1", "a*b")
	if !errors.Is(err, durable.ErrProcessorRefused) || !strings.Contains(err.Error(), `platform "a*b" is not a platform name`) {
		t.Errorf("refused request: %v", err)
	}
}

// Without a router, Run waits for one until its context ends.
func TestRunWaitsForARouter(t *testing.T) {
	s := meshtest.NATS(t)
	p, err := stream.New(connect(t, s.ClientURL()), "lonely")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Run(ctx, stream.Filter{}, func(context.Context, *chatopsv1.Event) error { return nil }); err != nil {
		t.Errorf("Run without a router: %v, want nil at the end of its context", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("Run returned after %s, before its context ended", d)
	}
}
