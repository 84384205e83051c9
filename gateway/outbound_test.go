package gateway_test

import (
	"context"
	"fmt"
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

// keepConsumers makes the consumers gateways ask for, as routers do.
func keepConsumers(t *testing.T, svc natsmicro.Service, js jetstream.JetStream) {
	t.Helper()
	keepConsumersAfter(t, svc, js, 0)
}

// keepConsumersAfter is keepConsumers by a router that takes delay to
// answer.
func keepConsumersAfter(t *testing.T, svc natsmicro.Service, js jetstream.JetStream, delay time.Duration) {
	t.Helper()
	if err := svc.AddEndpoint("keep-replies", natsmicro.HandlerFunc(func(req natsmicro.Request) {
		time.Sleep(delay)
		if err := durable.Keep(context.Background(), js, "test", string(req.Data()), req.Headers().Get(durable.KeepHeader)); err != nil {
			_ = req.Error("500", err.Error(), nil)
			return
		}
		_ = req.Respond(nil)
	}), natsmicro.WithEndpointSubject(durable.KeepSubject("test"))); err != nil {
		t.Fatal(err)
	}
}

// routerForConsumers runs what the outbound path needs of a router: the
// streams and the consumers gateways ask for.
func routerForConsumers(t *testing.T, s *server.Server) jetstream.JetStream {
	t.Helper()
	nc := connect(t, s)
	js, _ := streams(t, nc)
	svc, err := natsmicro.AddService(nc, natsmicro.Config{Name: durable.RouterService, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	keepConsumers(t, svc, js)
	return js
}

// postUnasked stores an outbound message for the conversation C1 of a
// gateway instance, as a router does with a scheduled result.
func postUnasked(t *testing.T, js jetstream.JetStream, instance, token, text string) {
	t.Helper()
	subject := durable.OutboundSubject(chatopsv1.ReplySubject("test", instance, token))
	data, _ := proto.Marshal(&chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte(text), Platform: "test", To: "C1"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := durable.Publish(ctx, js, &nats.Msg{Subject: subject, Header: durable.ReplyHeader(subject), Data: data}); err != nil {
		t.Fatal(err)
	}
}

// waitOutboundConsumer waits until the reply stream has the consumer name.
func waitOutboundConsumer(t *testing.T, js jetstream.JetStream, name string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := js.Stream(context.Background(), durable.ReplyStream("test"))
		if err == nil {
			if _, err = s.Consumer(context.Background(), name); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no consumer %s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// What the bot posts unasked to a shared platform's conversation (a
// scheduled result) is posted once, by any live gateway of the platform,
// whichever gateway took the message that asked for it: that one may be
// gone for good. When a gateway dies, its siblings post the rest.
func TestOutboundPostedOnceByAnyGatewayOfThePlatform(t *testing.T) {
	s := meshtest.NATS(t)
	js := routerForConsumers(t, s)
	a, anc := startShared(t, s, "gw-a")
	b, _ := startShared(t, s, "gw-b")
	waitOutboundConsumer(t, js, durable.OutboundConsumer)

	collect := func(n int, from ...*adaptertest.Input) map[string]int {
		t.Helper()
		got := map[string]int{}
		deadline := time.After(20 * time.Second)
		for total := 0; total < n; total++ {
			select {
			case rep := <-from[0].Replies():
				got[string(rep.Data)]++
			case rep := <-from[len(from)-1].Replies():
				got[string(rep.Data)]++
			case <-deadline:
				t.Fatalf("%d of %d posted within 20s: %v", total, n, got)
			}
		}
		return got
	}
	const n = 6
	for i := range n {
		// Set through a gateway instance that is gone (a pod replaced).
		postUnasked(t, js, "gw-gone", fmt.Sprintf("s1-%d", i), fmt.Sprintf("result %d", i))
	}
	got := collect(n, a, b)
	for i := range n {
		if want := fmt.Sprintf("result %d", i); got[want] != 1 {
			t.Errorf("%q posted %d times, want once: %v", want, got[want], got)
		}
	}
	a.NoReply(t, time.Second)
	b.NoReply(t, time.Second)

	// a dies; b alone posts what comes next, also what was set through a.
	anc.Close()
	for i := range 3 {
		postUnasked(t, js, "gw-a", fmt.Sprintf("s2-%d", i), fmt.Sprintf("later %d", i))
	}
	got = collect(3, b)
	for i := range 3 {
		if want := fmt.Sprintf("later %d", i); got[want] != 1 {
			t.Errorf("%q posted %d times by the sibling, want once: %v", want, got[want], got)
		}
	}
	b.NoReply(t, 2*time.Second)
}

// A platform whose conversations live in one gateway process (a web
// session, a terminal) gets what is posted unasked through the instance
// that holds them: stored while that gateway is down, posted when it is
// back, and never by another instance.
func TestOutboundWaitsForItsGatewayInstance(t *testing.T) {
	s := meshtest.NATS(t)
	js := routerForConsumers(t, s)
	start := func(instance string) (*adaptertest.Input, func()) {
		in := adaptertest.New("test")
		g, err := gateway.New(connect(t, s), []adapter.Input{in}, gateway.Config{Instance: instance, Delivery: durable.JetStream, ShutdownGrace: 100 * time.Millisecond}, meshtest.Logger(t).With("instance", instance))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = g.Run(ctx)
		}()
		stop := func() { // and wait until it has stopped: what comes next is not for it
			cancel()
			<-done
		}
		t.Cleanup(stop)
		return in, stop
	}
	w1, stop1 := start("w1")
	w2, _ := start("w2")
	waitOutboundConsumer(t, js, durable.InstanceOutboundConsumer("w1"))
	waitOutboundConsumer(t, js, durable.InstanceOutboundConsumer("w2"))

	postUnasked(t, js, "w1", "s1-1", "for w1")
	if rep := w1.Reply(t, 10*time.Second); string(rep.Data) != "for w1" || rep.To != "C1" {
		t.Fatalf("w1 posted %q to %q", rep.Data, rep.To)
	}
	w2.NoReply(t, time.Second)

	// w1 stops; what comes meanwhile waits for it.
	stop1()
	postUnasked(t, js, "w1", "s1-2", "while w1 was away")
	w2.NoReply(t, 2*time.Second)
	w1again, _ := start("w1")
	// Handed to w1's last pull request as it stopped, it comes back after
	// the ack wait (durable.AckWaitReplies), later but once.
	if rep := w1again.Reply(t, durable.AckWaitReplies+15*time.Second); string(rep.Data) != "while w1 was away" {
		t.Fatalf("w1, back, posted %q", rep.Data)
	}
	w1again.NoReply(t, time.Second) // not the first one again
	w2.NoReply(t, 100*time.Millisecond)
}

// With core delivery (no stream), what is posted unasked comes on the
// gateway's subscription: posted once, even when several routers publish
// it (each that saw a watched service change).
func TestOutboundCoreDeliveryPostsOnce(t *testing.T) {
	s := meshtest.NATS(t)
	in, g, _, _ := run(t, s, gateway.Config{Instance: "c1"})
	<-g.Started()
	nc := connect(t, s)
	subject := durable.OutboundSubject(chatopsv1.ReplySubject("test", "c1", "w1-2-3"))
	data, _ := proto.Marshal(&chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte("watch: greeter is back: 1 node"), Platform: "test", To: "C1"})
	for range 3 {
		if err := nc.Publish(subject, data); err != nil {
			t.Fatal(err)
		}
	}
	if rep := in.Reply(t, 5*time.Second); string(rep.Data) != "watch: greeter is back: 1 node" || rep.To != "C1" {
		t.Fatalf("posted %q to %q", rep.Data, rep.To)
	}
	in.NoReply(t, time.Second)
}

// startCheck is a test input that notes, when it is started, whether its
// outbound consumer exists.
type startCheck struct {
	*adaptertest.Input
	js       jetstream.JetStream
	consumer string
	found    chan error
}

func (c *startCheck) Start(ctx context.Context) error {
	s, err := c.js.Stream(ctx, durable.ReplyStream("test"))
	if err == nil {
		_, err = s.Consumer(ctx, c.consumer)
	}
	c.found <- err
	return c.Input.Start(ctx)
}

// An input starts only once its outbound consumer exists, even when the
// router is slow to make it: a tell or mail taken at once must not find
// its platform unserved (router/elsewhere.go) and be refused.
func TestInputsStartAfterTheirOutboundConsumer(t *testing.T) {
	s := meshtest.NATS(t)
	rnc := connect(t, s)
	js, _ := streams(t, rnc)
	svc, err := natsmicro.AddService(rnc, natsmicro.Config{Name: durable.RouterService, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	keepConsumersAfter(t, svc, js, 500*time.Millisecond) // a busy router
	if err := rnc.Flush(); err != nil {                  // the router is listening
		t.Fatal(err)
	}

	in := &startCheck{Input: adaptertest.New("test"), js: js, consumer: durable.InstanceOutboundConsumer("gw-1"), found: make(chan error, 1)}
	g, err := gateway.New(connect(t, s), []adapter.Input{in}, gateway.Config{Instance: "gw-1", Delivery: durable.JetStream, ShutdownGrace: 100 * time.Millisecond}, meshtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case err := <-in.found:
		if err != nil {
			t.Fatalf("the input was started before its outbound consumer existed: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the input was not started within 15s")
	}
}
