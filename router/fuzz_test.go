package router_test

import (
	"context"
	"log/slog"
	"testing"
	"time"
	"unicode/utf8"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"go-micro.dev/v4/registry"
	"google.golang.org/protobuf/proto"
)

// FuzzEvent feeds arbitrary bytes to what a router does with a message
// from NATS: decode the Event, then handle it. Whatever arrives, it must
// not panic, and a decoded event always gets one reply or error, addressed
// to it, in valid UTF-8.
func FuzzEvent(f *testing.F) {
	for _, ev := range []*chatopsv1.Event{
		{Id: "1", Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, Data: []byte("ping"), From: &chatopsv1.Peer{Id: "U1"}, Platform: "slack"},
		{Id: "2", Data: []byte("help")},
		{Id: "3", Data: []byte("yes")},
		{Id: "4", Data: []byte("the three laws of robotics"), Meta: map[string]string{"k": "v"}},
		{Id: "5", Data: []byte("\xff\xfe unknown \x00 command")},
		{Id: "6", Data: []byte("\ufeffhelp\u200becho"), Platform: "irc", Meta: map[string]string{router.MetaRoom: "true", router.MetaAddress: "botmesh: help or !help"}},
		{Id: "7", Data: []byte("the three law \u202e"), Platform: "xmpp", Meta: map[string]string{"xmpp.type": "groupchat"}},
		{Data: []byte("")},
	} {
		b, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x0a\xff\xff\xff"))
	s := meshtest.NATS(f)
	m := meshtest.Mesh(f, s, nil, mesh.WithRegistry(registry.NewMemoryRegistry()), mesh.WithLogger(slog.New(slog.DiscardHandler)))
	r, err := router.New(m, router.Config{Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := &chatopsv1.Event{}
		if err := proto.Unmarshal(data, ev); err != nil {
			return // logged and dropped by the router; nothing to answer
		}
		rep := r.Handle(context.Background(), ev)
		if rep == nil {
			t.Fatal("no reply")
		}
		if rep.GetInReplyTo() != ev.GetId() {
			t.Fatalf("reply to %q answers %q", ev.GetId(), rep.GetInReplyTo())
		}
		if typ := rep.GetType(); typ != chatopsv1.EventType_EVENT_TYPE_REPLY && typ != chatopsv1.EventType_EVENT_TYPE_ERROR {
			t.Fatalf("reply type %s", typ)
		}
		if !utf8.Valid(rep.GetData()) || len(rep.GetData()) == 0 {
			t.Fatalf("reply %q", rep.GetData())
		}
		if _, err := proto.Marshal(rep); err != nil {
			t.Fatalf("the reply does not encode: %v", err)
		}
	})
}
