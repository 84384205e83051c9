package durable_test

import (
	"context"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A router of this version, started on the inbound stream of an earlier
// one (no copy to the events stream), adds the copy: the messages stored
// from then on reach the events stream, once each, and the inbound stream
// keeps what it held.
func TestEventsAddedToAnEarlierInboundStream(t *testing.T) {
	s := meshtest.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: durable.Stream, Subjects: []string{chatopsv1.SubjectInAll},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute, MaxAge: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	say := func(id string) {
		t.Helper()
		if _, err := durable.Publish(ctx, js, &nats.Msg{Subject: chatopsv1.SubjectIn("slack"), Header: durable.Header("slack", id), Data: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	say("before")
	in, err := durable.EnsureStream(ctx, js, durable.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if rp := in.CachedInfo().Config.RePublish; rp == nil || rp.Source != "bot.v1.in.>" || rp.Destination != "bot.v1.ev.>" {
		t.Fatalf("inbound stream's RePublish: %+v", rp)
	}
	say("after")
	say("after") // a gateway's retry: stored once, copied once
	ev, err := js.Stream(ctx, durable.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ev.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("events stream: %+v, %v; want the one message stored after the upgrade", info, err)
	}
	m, err := ev.GetMsg(ctx, info.State.LastSeq)
	if err != nil || string(m.Data) != "after" || m.Subject != "bot.v1.ev.slack" || m.Header.Get(jetstream.MsgIDHeader) != "slack:after" {
		t.Fatalf("event copied: %+v, %v", m, err)
	}
	if info, err := in.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Fatalf("inbound stream: %+v, %v; want both messages", info, err)
	}
}
