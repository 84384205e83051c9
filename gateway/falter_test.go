package gateway_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
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
	if _, err := durable.EnsureReplyStream(ctx, js, 1); err != nil {
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
	data, _ := proto.Marshal(&chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte(text), InReplyTo: ev.Id, Platform: ev.Platform})
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
