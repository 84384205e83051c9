package durable_test

import (
	"context"
	"strings"
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
// once the events stream is there reach it, once each, and the inbound
// stream keeps every message.
func TestEventsAddedToAnEarlierInboundStream(t *testing.T) {
	js := meshtest.JetStream(t, meshtest.NATS(t).ClientURL())
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
	// Until the events stream is there, the copies go nowhere.
	say("between")
	if _, err := durable.EnsureEventsStream(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	if rp := in.CachedInfo().Config.RePublish; rp == nil || rp.Source != "bot.v1.in.>" || rp.Destination != "bot.v1.ev.>" {
		t.Fatalf("inbound stream's RePublish: %+v", rp)
	}
	say("after")
	say("after") // a gateway's retry: stored once, copied once
	say("last")
	ev, err := js.Stream(ctx, durable.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	// The copy is published after the inbound stream stored the message:
	// wait for the last one (copies keep their order).
	var got []string
	for i := 0; i < 200; i++ {
		got = got[:0]
		info, err := ev.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := ev.GetMsg(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != "bot.v1.ev.slack" || m.Header.Get(jetstream.MsgIDHeader) != "slack:"+string(m.Data) {
				t.Errorf("copy %d: subject %s, message id %q, data %q", seq, m.Subject, m.Header.Get(jetstream.MsgIDHeader), m.Data)
			}
			got = append(got, string(m.Data))
		}
		if len(got) > 0 && got[len(got)-1] == "last" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Join(got, " ") != "after last" {
		t.Fatalf("events stream holds %q; want the messages stored once it was there, once each", got)
	}
	if info, err := in.Info(ctx); err != nil || info.State.Msgs != 4 {
		t.Fatalf("inbound stream: %+v, %v; want the four messages", info, err)
	}
}

// Routers update the events stream at start only if a processor had it
// made: UpdateEventsStream makes none, and changes one that is there.
func TestUpdateEventsStream(t *testing.T) {
	js := meshtest.JetStream(t, meshtest.NATS(t).ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if there, err := durable.UpdateEventsStream(ctx, js, 1); there || err != nil {
		t.Fatalf("with no events stream: there %v, err %v", there, err)
	}
	if _, err := js.Stream(ctx, durable.EventsStream); err == nil {
		t.Fatal("UpdateEventsStream made the events stream")
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: durable.EventsStream, Subjects: []string{durable.EventsSubjectPrefix + ">"}, MaxAge: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if there, err := durable.UpdateEventsStream(ctx, js, 1); !there || err != nil {
		t.Fatalf("with an events stream: there %v, err %v", there, err)
	}
	s, err := js.Stream(ctx, durable.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != durable.EventsMaxAge {
		t.Errorf("max age %s after the update, want %s", got, durable.EventsMaxAge)
	}
}
