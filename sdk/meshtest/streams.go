package meshtest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	natsmicro "github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"
)

// JetStream connects to the NATS server at url with opts, closing the
// connection when the test ends; its Conn is the connection.
func JetStream(tb testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

// RouterStreams does on nc what routers do for stream processors
// (sdk/stream), for tests without a router: it makes the inbound stream
// and the reply streams of platforms, and answers processors' requests for
// their consumers (making the events stream for the first), as a router
// does, until the test ends.
func RouterStreams(tb testing.TB, nc *nats.Conn, platforms ...string) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := durable.EnsureStream(ctx, js, durable.StreamConfig{}); err != nil {
		tb.Fatalf("meshtest: %v", err)
	}
	for _, p := range platforms {
		if _, err := durable.EnsureReplyStream(ctx, js, p, 1); err != nil {
			tb.Fatalf("meshtest: %v", err)
		}
	}
	svc, err := natsmicro.AddService(nc, natsmicro.Config{Name: durable.RouterService, Version: "1.0.0"})
	if err != nil {
		tb.Fatalf("meshtest: %v", err)
	}
	tb.Cleanup(func() { _ = svc.Stop() })
	log := slog.New(slog.NewTextHandler(tb.Output(), nil))
	if err := svc.AddEndpoint("keep-processors", durable.ProcessorEndpoint(js, 1, log), natsmicro.WithEndpointSubject(durable.ProcessorSubjectPrefix+"*")); err != nil {
		tb.Fatalf("meshtest: %v", err)
	}
	return js
}

// Say publishes a chat message as a gateway of ev's platform does: on the
// platform's inbound subject, into the inbound stream, with the event's
// id as message id. It fails the test if the stream does not store it.
func Say(tb testing.TB, js jetstream.JetStream, ev *chatopsv1.Event) {
	tb.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := ev.GetPlatform()
	if _, err := durable.Publish(ctx, js, &nats.Msg{Subject: chatopsv1.SubjectIn(p), Header: durable.Header(p, ev.GetId()), Data: data}); err != nil {
		tb.Errorf("meshtest: say %s: %v", ev.GetId(), err)
	}
}
