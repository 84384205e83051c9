package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
)

func connect(t *testing.T, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// run starts a gateway with one test input and returns it and a channel
// with Run's result.
func run(t *testing.T, s *server.Server, cfg gateway.Config) (*adaptertest.Input, *gateway.Gateway, context.CancelFunc, chan error) {
	t.Helper()
	in := adaptertest.New("test")
	if cfg.Delivery == "" {
		cfg.Delivery = durable.Core // the fake router below is a core subscriber
	}
	g, err := gateway.New(connect(t, s), []adapter.Input{in}, cfg, meshtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- g.Run(ctx)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(15 * time.Second):
			t.Error("gateway Run did not return 15s after cancel")
		}
	})
	return in, g, cancel, done
}

// fakeRouter answers every message with handle's text (nil: no answer).
func fakeRouter(t *testing.T, nc *nats.Conn, handle func(ev *chatopsv1.Event) *chatopsv1.Event) chan *nats.Msg {
	t.Helper()
	seen := make(chan *nats.Msg, 100)
	_, err := nc.QueueSubscribe(chatopsv1.SubjectInAll, "router", func(m *nats.Msg) {
		seen <- m
		ev := &chatopsv1.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			t.Errorf("gateway published a malformed event: %v", err)
			return
		}
		if rep := handle(ev); rep != nil {
			data, _ := proto.Marshal(rep)
			_ = nc.Publish(ev.ReplyTo, data)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return seen
}

func TestMessageAndReply(t *testing.T) {
	s := meshtest.NATS(t)
	seen := fakeRouter(t, connect(t, s), func(ev *chatopsv1.Event) *chatopsv1.Event {
		return &chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte("re: " + string(ev.Data)), InReplyTo: ev.Id, To: ev.To, Platform: ev.Platform}
	})
	in, g, _, _ := run(t, s, gateway.Config{Instance: "gw1"})
	id := in.Say("hello there")
	rep := in.Reply(t, 5*time.Second)
	if string(rep.Data) != "re: hello there" || rep.InReplyTo != id {
		t.Fatalf("reply %q to %s, want re: hello there to %s", rep.Data, rep.InReplyTo, id)
	}
	m := <-seen
	ev := &chatopsv1.Event{}
	_ = proto.Unmarshal(m.Data, ev)
	if m.Subject != "bot.v1.in.test" || !strings.HasPrefix(m.Reply, "bot.v1.out.test.gw1.") || ev.ReplyTo != m.Reply ||
		ev.Gateway != "gw1" || ev.Platform != "test" || ev.Type != chatopsv1.EventType_EVENT_TYPE_MESSAGE || ev.Time == nil || ev.From.GetId() != "U1" {
		t.Errorf("published %s reply %s event %+v", m.Subject, m.Reply, ev)
	}
	if g.Instance() != "gw1" {
		t.Errorf("instance %q", g.Instance())
	}
}

func TestNoRouterRunning(t *testing.T) {
	s := meshtest.NATS(t)
	in, _, _, _ := run(t, s, gateway.Config{})
	in.Say("ping")
	rep := in.Reply(t, 5*time.Second)
	if rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || string(rep.Data) != "no router is running, so your command did not run: start a router (or ask whoever runs botmesh) and try again" {
		t.Errorf("got %s %q", rep.Type, rep.Data)
	}
}

func TestNoReplyInTime(t *testing.T) {
	s := meshtest.NATS(t)
	fakeRouter(t, connect(t, s), func(*chatopsv1.Event) *chatopsv1.Event { return nil })
	in, _, _, _ := run(t, s, gateway.Config{ReplyTimeout: 300 * time.Millisecond})
	in.Say("ping")
	rep := in.Reply(t, 5*time.Second)
	if rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.HasPrefix(string(rep.Data), "no reply within 300ms") {
		t.Errorf("got %s %q", rep.Type, rep.Data)
	}
}

func TestTooLongIsRefusedLocally(t *testing.T) {
	s := meshtest.NATS(t)
	seen := fakeRouter(t, connect(t, s), func(ev *chatopsv1.Event) *chatopsv1.Event {
		return &chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: ev.Data, InReplyTo: ev.Id}
	})
	in, _, _, _ := run(t, s, gateway.Config{MaxMessageBytes: 100})
	in.Say(strings.Repeat("x", 1<<20))
	rep := in.Reply(t, 5*time.Second)
	if rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || string(rep.Data) != "message too long: 1048576 bytes; the limit is 100" {
		t.Errorf("got %s %q", rep.Type, rep.Data)
	}
	select {
	case m := <-seen:
		t.Errorf("a refused message was published (%d bytes)", len(m.Data))
	default:
	}
	in.Say("still here")
	if rep := in.Reply(t, 5*time.Second); string(rep.Data) != "still here" {
		t.Errorf("next message: %q", rep.Data)
	}
}

// At the end of the input the gateway waits for the replies still due,
// posts them, and returns.
func TestEndOfInputWaitsForReplies(t *testing.T) {
	s := meshtest.NATS(t)
	fakeRouter(t, connect(t, s), func(ev *chatopsv1.Event) *chatopsv1.Event {
		time.Sleep(200 * time.Millisecond)
		return &chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: ev.Data, InReplyTo: ev.Id}
	})
	in, _, _, done := run(t, s, gateway.Config{})
	in.Say("one")
	in.Say("two")
	in.End()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the end of input")
	}
	for _, want := range []string{"one", "two"} {
		if rep := in.Reply(t, time.Second); string(rep.Data) != want {
			t.Errorf("reply %q, want %q", rep.Data, want)
		}
	}
}

func TestMalformedReplyIsDropped(t *testing.T) {
	s := meshtest.NATS(t)
	nc := connect(t, s)
	fakeRouter(t, nc, func(ev *chatopsv1.Event) *chatopsv1.Event {
		_ = nc.Publish(ev.ReplyTo, []byte("\xff\xff garbage"))
		return &chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte("good"), InReplyTo: ev.Id}
	})
	in, _, _, _ := run(t, s, gateway.Config{})
	in.Say("x")
	if rep := in.Reply(t, 5*time.Second); string(rep.Data) != "good" {
		t.Errorf("got %q", rep.Data)
	}
	in.NoReply(t, 200*time.Millisecond)
}

func TestStopReturnsPromptly(t *testing.T) {
	s := meshtest.NATS(t)
	_, _, cancel, done := run(t, s, gateway.Config{ShutdownGrace: time.Second})
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stop took %s", d)
	}
}

func TestBadConfig(t *testing.T) {
	if _, err := gateway.New(nil, nil, gateway.Config{Instance: "a.b"}, nil); err == nil {
		t.Error("instance with a dot accepted")
	}
	if _, err := gateway.New(nil, []adapter.Input{adaptertest.New("x"), adaptertest.New("x")}, gateway.Config{}, nil); err == nil {
		t.Error("two inputs with one name accepted")
	}
}

// A platform's redelivery of an event (same id) gets no second reply, also
// when it reaches another gateway replica: the replicas share what they
// took through JetStream.
func TestRedeliveryAnsweredOnce(t *testing.T) {
	s := meshtest.NATS(t)
	seen := fakeRouter(t, connect(t, s), func(ev *chatopsv1.Event) *chatopsv1.Event {
		return &chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: ev.Data, InReplyTo: ev.Id, Platform: ev.Platform}
	})
	a, _, _, _ := run(t, s, gateway.Config{Instance: "replica-a"})
	b, _, _, _ := run(t, s, gateway.Config{Instance: "replica-b"})
	ev := func() *chatopsv1.Event {
		return &chatopsv1.Event{Id: "Ev0001", From: &chatopsv1.Peer{Id: "U1"}, To: "C1", Data: []byte("deploy")}
	}
	a.SayEvent(ev())
	if rep := a.Reply(t, 5*time.Second); string(rep.Data) != "deploy" {
		t.Fatalf("first delivery: %q", rep.Data)
	}
	a.SayEvent(ev()) // the same replica again
	b.SayEvent(ev()) // another replica
	a.NoReply(t, 300*time.Millisecond)
	b.NoReply(t, 10*time.Millisecond)
	if n := len(seen); n != 1 {
		t.Errorf("the router got the event %d times, want 1", n)
	}
	// A different event still goes through.
	b.SayEvent(&chatopsv1.Event{Id: "Ev0002", From: &chatopsv1.Peer{Id: "U1"}, To: "C1", Data: []byte("next")})
	if rep := b.Reply(t, 5*time.Second); string(rep.Data) != "next" {
		t.Errorf("next event: %q", rep.Data)
	}
}

// Without JetStream each replica remembers on its own.
func TestRedeliveryWithoutJetStream(t *testing.T) {
	s := meshtest.NATS(t, func(o *server.Options) { o.JetStream = false })
	fakeRouter(t, connect(t, s), func(ev *chatopsv1.Event) *chatopsv1.Event {
		return &chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: ev.Data, InReplyTo: ev.Id, Platform: ev.Platform}
	})
	a, _, _, _ := run(t, s, gateway.Config{})
	for range 2 {
		a.SayEvent(&chatopsv1.Event{Id: "Ev1", From: &chatopsv1.Peer{Id: "U1"}, To: "C1", Data: []byte("x")})
	}
	a.Reply(t, 5*time.Second)
	a.NoReply(t, 300*time.Millisecond)
}

// With JetStream delivery the message goes into the routers' stream; a
// router that takes it again after another answered it (a redelivery)
// makes a second reply, which the gateway drops.
func TestJetStreamDelivery(t *testing.T) {
	s := meshtest.NATS(t)
	nc := connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	in, _, _, _ := run(t, s, gateway.Config{Delivery: durable.JetStream})
	in.Say("before the stream exists")
	// The gateway tries for a while (a cluster's stream may be between
	// leaders) before it tells the user.
	if rep := in.Reply(t, 20*time.Second); rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.Contains(string(rep.Data), "start a router") {
		t.Fatalf("without a stream: %s %q", rep.Type, rep.Data)
	}

	ctx := context.Background()
	stream, err := durable.EnsureStream(ctx, js, durable.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	in.SayEvent(&chatopsv1.Event{Id: "Ev9", From: &chatopsv1.Peer{Id: "U1"}, To: "C1", Data: []byte("stored")})
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if len(got) != 1 {
		t.Fatalf("%d messages in the stream, want 1", len(got))
	}
	if id := got[0].Headers().Get(jetstream.MsgIDHeader); id != "test:Ev9" {
		t.Errorf("message id %q, want test:Ev9", id)
	}
	ev := &chatopsv1.Event{}
	if err := proto.Unmarshal(got[0].Data(), ev); err != nil {
		t.Fatal(err)
	}
	reply, _ := proto.Marshal(&chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte("done"), InReplyTo: ev.Id, Platform: ev.Platform})
	for range 2 { // the first router's reply, and a second router's after a redelivery
		if err := nc.Publish(ev.ReplyTo, reply); err != nil {
			t.Fatal(err)
		}
	}
	_ = got[0].Ack()
	if rep := in.Reply(t, 5*time.Second); string(rep.Data) != "done" {
		t.Errorf("reply %q", rep.Data)
	}
	in.NoReply(t, 300*time.Millisecond)
}

func TestMetricsAndHealth(t *testing.T) {
	s := meshtest.NATS(t)
	fakeRouter(t, connect(t, s), func(ev *chatopsv1.Event) *chatopsv1.Event {
		return &chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: ev.Data, InReplyTo: ev.Id, Platform: ev.Platform}
	})
	in, g, _, _ := run(t, s, gateway.Config{MaxMessageBytes: 10})
	reg := prometheus.NewRegistry()
	if err := g.Register(reg); err != nil {
		t.Fatal(err)
	}
	in.Say("ok")
	in.Reply(t, 5*time.Second)
	in.Say("far too long for the limit")
	in.Reply(t, 5*time.Second)
	want := `
# HELP botmesh_gateway_messages_total Messages passed to the routers, by input.
# TYPE botmesh_gateway_messages_total counter
botmesh_gateway_messages_total{input="test"} 1
# HELP botmesh_gateway_refused_total Messages not passed on, by input and reason (too_long, duplicate, unreachable, not_confirmed).
# TYPE botmesh_gateway_refused_total counter
botmesh_gateway_refused_total{input="test",reason="too_long"} 1
# HELP botmesh_gateway_replies_total Answers posted, by input and kind (reply, error, progress, queued, recovered, late, no_router, timeout, dropped_duplicate).
# TYPE botmesh_gateway_replies_total counter
botmesh_gateway_replies_total{input="test",kind="reply"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "botmesh_gateway_messages_total", "botmesh_gateway_refused_total", "botmesh_gateway_replies_total"); err != nil {
		t.Error(err)
	}
	if err := g.Healthy(); err != nil {
		t.Errorf("healthy input reported: %v", err)
	}
}
