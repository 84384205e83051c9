package gateway_test

import (
	"context"
	"fmt"
	"net"
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
	natsmicro "github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"
)

// streams makes the inbound and reply streams, as a router does, and
// returns the routers' consumer.
func streams(t *testing.T, nc *nats.Conn) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	in, err := durable.EnsureStream(ctx, js, durable.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := durable.EnsureReplyStream(ctx, js, "test", 1); err != nil {
		t.Fatal(err)
	}
	cons, err := in.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: durable.Consumer, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	return js, cons
}

// take fetches one message from the routers' consumer, as a router does.
func take(t *testing.T, cons jetstream.Consumer) (jetstream.Msg, *chatopsv1.Event) {
	t.Helper()
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := <-batch.Messages()
	if !ok {
		t.Fatal("no message for the router")
	}
	ev := &chatopsv1.Event{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		t.Fatal(err)
	}
	return m, ev
}

func answer(t *testing.T, js jetstream.JetStream, ev *chatopsv1.Event, text string) {
	t.Helper()
	// As a router's reply: to the message's conversation, thread and meta.
	data, _ := proto.Marshal(&chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte(text), InReplyTo: ev.Id,
		Platform: ev.Platform, Gateway: ev.Gateway, To: ev.To, Thread: ev.Thread, Meta: ev.Meta})
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: ev.ReplyTo, Header: durable.ReplyHeader(ev.ReplyTo), Data: data}); err != nil {
		t.Fatal(err)
	}
}

// With no router running, a user hears within seconds that the command
// waits for one (not 40 s of silence and a timeout), and gets its answer
// once a router starts.
func TestQueuedWhileNoRouterRuns(t *testing.T) {
	s := meshtest.NATS(t)
	nc := connect(t, s)
	js, cons := streams(t, nc)
	in, _, _, _ := run(t, s, gateway.Config{Delivery: durable.JetStream})
	start := time.Now()
	in.Say("ping")
	rep := in.Reply(t, 10*time.Second)
	if rep.Type != chatopsv1.EventType_EVENT_TYPE_PROGRESS || !strings.HasPrefix(string(rep.Data), "queued: no router is running") {
		t.Fatalf("first answer: %s %q, want the queued note", rep.Type, rep.Data)
	}
	t.Logf("queued note after %s", time.Since(start).Round(time.Millisecond))
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("queued note after %s, want about 3s", d)
	}

	// A router starts: it announces itself and answers.
	svc, err := natsmicro.AddService(nc, natsmicro.Config{Name: durable.RouterService, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	m, ev := take(t, cons)
	answer(t, js, ev, "pong")
	_ = m.Ack()
	if rep := in.Reply(t, 5*time.Second); rep.Type != chatopsv1.EventType_EVENT_TYPE_REPLY || string(rep.Data) != "pong" {
		t.Fatalf("final: %s %q", rep.Type, rep.Data)
	}
	in.NoReply(t, 300*time.Millisecond)

	// With a router running, a slow answer gets no queued note.
	in.Say("slow")
	m, ev = take(t, cons)
	time.Sleep(4 * time.Second)
	answer(t, js, ev, "slow pong")
	_ = m.Ack()
	if rep := in.Reply(t, 5*time.Second); rep.Type != chatopsv1.EventType_EVENT_TYPE_REPLY || string(rep.Data) != "slow pong" {
		t.Fatalf("with a router running: %s %q, want the answer alone", rep.Type, rep.Data)
	}
}

// A reply published while the gateway's connection is down (its NATS server
// restarted) does not reach its subscription; the gateway reads it from the
// reply stream once it reconnects, and posts it once.
func TestReplyReadFromStreamAfterReconnect(t *testing.T) {
	dir := t.TempDir()
	opts := func(o *server.Options) { o.StoreDir = dir }
	s := meshtest.NATS(t, opts)
	url := s.ClientURL()
	port := s.Addr().(*net.TCPAddr).Port
	in, _, _, _ := run(t, s, gateway.Config{Delivery: durable.JetStream})
	nc := connect(t, s)
	_, cons := streams(t, nc)
	in.Say("ping")
	m, ev := take(t, cons)
	_ = m.Ack()

	// NATS restarts on the same port and store; the reply is stored by a
	// router that reconnects before the gateway does (nats.go waits 2 s
	// before it tries again).
	s.Shutdown()
	s.WaitForShutdown()
	s2 := meshtest.NATS(t, opts, func(o *server.Options) { o.Port = port })
	rc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rjs, err := jetstream.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	answer(t, rjs, ev, "pong")
	_ = s2
	rep := in.Reply(t, 15*time.Second)
	if rep.Type != chatopsv1.EventType_EVENT_TYPE_REPLY || string(rep.Data) != "pong" {
		t.Fatalf("reply %s %q", rep.Type, rep.Data)
	}
	in.NoReply(t, 2*time.Second)
}

// startShared starts a gateway instance with a shared input of platform
// "test" on its own NATS connection, which it returns: closing it is the
// gateway's death as NATS sees it.
func startShared(t *testing.T, s *server.Server, instance string) (*adaptertest.Input, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	in := adaptertest.NewShared("test")
	g, err := gateway.New(nc, []adapter.Input{in}, gateway.Config{Instance: instance, Delivery: durable.JetStream, AdoptAfter: time.Second, ShutdownGrace: 100 * time.Millisecond}, meshtest.Logger(t).With("instance", instance))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		nc.Close()
		<-done
	})
	return in, nc
}

// waitConsumer waits until the reply stream has the consumer of instance.
func waitConsumer(t *testing.T, js jetstream.JetStream, instance string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := js.Stream(context.Background(), durable.ReplyStream("test"))
		if err == nil {
			if _, err = s.Consumer(context.Background(), "gw_"+instance); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reply consumer for %s: %v", instance, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A gateway replica of a shared platform (Slack, XMPP, IRC) dies while
// commands it took still run: a sibling posts their replies, each once, and
// not while the replica is alive.
func TestSiblingPostsRepliesOfAGatewayThatIsGone(t *testing.T) {
	s := meshtest.NATS(t)
	nc := connect(t, s)
	js, cons := streams(t, nc)
	// Routers make the gateways' reply consumers.
	svc, err := natsmicro.AddService(nc, natsmicro.Config{Name: durable.RouterService, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	keepConsumers(t, svc, js)
	a, anc := startShared(t, s, "gw-a")
	b, _ := startShared(t, s, "gw-b")
	waitConsumer(t, js, "gw-a")
	waitConsumer(t, js, "gw-b")

	// Alive: a's replies are a's to post.
	a.Say("one")
	m, ev := take(t, cons)
	answer(t, js, ev, "one done")
	_ = m.Ack()
	if rep := a.Reply(t, 5*time.Second); string(rep.Data) != "one done" {
		t.Fatalf("a posted %q", rep.Data)
	}
	b.NoReply(t, 3*time.Second)

	// a takes three messages, then dies before their commands end.
	const n = 3
	var taken []*chatopsv1.Event
	for i := range n {
		a.Say(fmt.Sprintf("cmd %d", i))
		m, ev := take(t, cons)
		_ = m.Ack()
		taken = append(taken, ev)
	}
	anc.Close()
	died := time.Now()
	for i, ev := range taken {
		answer(t, js, ev, fmt.Sprintf("cmd %d done", i))
	}
	got := map[string]int{}
	for range n {
		// A reply published as a's connection closes may still be handed
		// to a's last pull request; it comes back after the ack wait
		// (durable.AckWaitReplies), later but once.
		rep := b.Reply(t, durable.AckWaitReplies+15*time.Second)
		got[string(rep.Data)]++
		if rep.InReplyTo == "" || rep.To != "C1" {
			t.Errorf("posted %q in reply to %q in %q, want the message's conversation", rep.Data, rep.InReplyTo, rep.To)
		}
	}
	t.Logf("the sibling posted %d replies %s after the gateway died", n, time.Since(died).Round(100*time.Millisecond))
	for i := range n {
		if want := fmt.Sprintf("cmd %d done", i); got[want] != 1 {
			t.Errorf("%q posted %d times by the sibling", want, got[want])
		}
	}
	b.NoReply(t, 3*time.Second)
	// The dead gateway's input (here a gateway whose NATS connection was
	// closed under it) posted none of them.
	for {
		select {
		case rep := <-a.Replies():
			if rep.Type == chatopsv1.EventType_EVENT_TYPE_REPLY {
				t.Errorf("the dead gateway posted %q", rep.Data)
			}
			continue
		default:
		}
		break
	}
}
