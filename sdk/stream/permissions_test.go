package stream_test

// A stream processor on the shipped NATS permissions
// (deploy/nats/permissions.conf): the demo processor's role ("relay")
// reads its own consumer of the events stream and posts as itself, and
// nothing else. A real nats-server runs that file; the router role makes
// the streams and consumers; the attacks are what a compromised processor
// would try.

import (
	"context"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/sdk/stream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

func TestShippedPermissions(t *testing.T) {
	s, pw := meshtest.ShippedNATS(t, "../../deploy/nats/permissions.conf")
	ctx := testCtx(t, time.Minute)
	// The router: the streams, and the endpoint that makes processors'
	// consumers; another processor, "counter", has one already.
	rc := connect(t, s.ClientURL(), nats.UserInfo("router", pw["BOTMESH_NATS_PASSWORD_ROUTER"]))
	rjs := meshtest.RouterStreams(t, rc, "slack")
	if _, err := durable.EnsureEventsStream(ctx, rjs, 1); err != nil {
		t.Fatalf("the router role makes the events stream: %v", err)
	}
	if err := durable.EnsureProcessorConsumer(ctx, rjs, "counter", ""); err != nil {
		t.Fatalf("the router role makes a processor's consumer: %v", err)
	}
	// A Slack gateway.
	gc := connect(t, s.ClientURL(), nats.UserInfo("gateway-slack", pw["BOTMESH_NATS_PASSWORD_GATEWAY_SLACK"]))
	gw := &env{s: s, nc: gc}
	gw.js, _ = jetstream.New(gc)

	// What relay does: reads what the gateway sends, posts elsewhere.
	errs, report := meshtest.NewViolations()
	pc := connect(t, s.ClientURL(), nats.UserInfo("processor-relay", pw["BOTMESH_NATS_PASSWORD_PROCESSOR_RELAY"]), report)
	p, err := stream.New(pc, "relay", stream.WithLogger(meshtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan *chatopsv1.Event, 10)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- p.Run(rctx, stream.Filter{Command: "deploy"}, func(_ context.Context, ev *chatopsv1.Event) error {
			seen <- ev
			return nil
		})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()
	pjs, _ := jetstream.New(pc)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := pjs.Consumer(ctx, durable.EventsStream, "relay"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("relay's consumer not made")
		}
		time.Sleep(50 * time.Millisecond)
	}
	gw.say(t, "slack", "C0DEV", "e1", "deploy api v2")
	select {
	case ev := <-seen:
		if ev.GetId() != "e1" || string(ev.GetData()) != "deploy api v2" {
			t.Fatalf("relay got %v", ev)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("relay did not get the gateway's message")
	}
	if err := p.Post(ctx, stream.Message("slack", "C0OPS", "deploy api v2 (from C0DEV)")); err != nil {
		t.Fatalf("relay posts to a Slack conversation: %v", err)
	}
	out, _ := rjs.Stream(ctx, durable.ReplyStream("slack"))
	if info, err := out.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("slack's reply stream after relay's post: %+v, %v", info, err)
	}

	nc := pc
	try := func(subject string, body []byte) {
		t.Helper()
		if _, err := nc.Request(subject, body, 2*time.Second); err == nil {
			t.Errorf("relay got an answer on %s", subject)
		}
	}
	// 1. Read the routers' work queue, the inbound stream.
	try("$JS.API.CONSUMER.MSG.NEXT.BOTMESH_IN.routers", []byte(`{"batch":1}`))
	errs.Refused(t, `Publish to "$JS.API.CONSUMER.MSG.NEXT.BOTMESH_IN.routers"`)
	try("$JS.API.CONSUMER.CREATE.BOTMESH_IN.spy", []byte(`{"stream_name":"BOTMESH_IN","config":{"durable_name":"spy"}}`))
	errs.Refused(t, `Publish to "$JS.API.CONSUMER.CREATE.BOTMESH_IN.spy"`)
	if _, err := nc.Subscribe("bot.v1.in.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	errs.Refused(t, `Subscription to "bot.v1.in.>"`)
	// 2. Read another processor's consumer, have the routers make it
	// another filter, or delete it.
	try("$JS.API.CONSUMER.MSG.NEXT.BOTMESH_EVENTS.counter", []byte(`{"batch":1}`))
	errs.Refused(t, `Publish to "$JS.API.CONSUMER.MSG.NEXT.BOTMESH_EVENTS.counter"`)
	try(durable.ProcessorSubject("counter"), []byte("irc"))
	errs.Refused(t, `Publish to "bot.v1.processor.counter"`)
	try("$JS.API.CONSUMER.DELETE.BOTMESH_EVENTS.counter", nil)
	errs.Refused(t, `Publish to "$JS.API.CONSUMER.DELETE.BOTMESH_EVENTS.counter"`)
	// 3. A consumer of its own making that pushes the events to the
	// inbound subjects (run commands as anyone), or the events read by
	// subscription.
	try("$JS.API.CONSUMER.CREATE.BOTMESH_EVENTS.relay", []byte(`{"stream_name":"BOTMESH_EVENTS","config":{"durable_name":"relay","deliver_subject":"bot.v1.in.slack"}}`))
	errs.Refused(t, `Publish to "$JS.API.CONSUMER.CREATE.BOTMESH_EVENTS.relay"`)
	if _, err := nc.Subscribe("bot.v1.ev.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	errs.Refused(t, `Subscription to "bot.v1.ev.>"`)
	// 4. Speak as a gateway, or answer for the router (a reply a gateway
	// waits for), or post as a gateway instance.
	forged, _ := proto.Marshal(&chatopsv1.Event{Id: "f1", Platform: "slack", To: "C0OPS", Data: []byte("deregister service api")})
	if err := nc.Publish(chatopsv1.SubjectIn("slack"), forged); err != nil {
		t.Fatal(err)
	}
	errs.Refused(t, `Publish to "bot.v1.in.slack"`)
	for _, subject := range []string{"bot.v1.out.slack.gw1.t1", "bot.v1.out.slack.gw1.t1.o"} {
		if err := nc.Publish(subject, forged); err != nil {
			t.Fatal(err)
		}
		errs.Refused(t, `Publish to "`+subject+`"`)
	}
	// The routers' consumer still holds the gateway's message.
	rcons, err := durable.EnsureConsumer(ctx, rjs, durable.Stream, jetstream.ConsumerConfig{Durable: durable.Consumer, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := rcons.Info(ctx); err != nil || info.NumPending != 1 {
		t.Errorf("the routers' consumer: %+v, %v; want the one message pending", info, err)
	}
}
