package ircgw

import (
	"maps"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/ergochat/irc-go/ircmsg"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkNormalize measures normalize, what the IRC input does with each
// PRIVMSG the client library has parsed (path: sender checks, addressing,
// formatting strip, id hash, Event build), against building the same Event
// as a struct literal (baseline).
func BenchmarkNormalize(b *testing.B) {
	s := self{nick: "botmesh", want: "botmesh", prefix: "!", chanTypes: "#&", network: "libera"}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct{ name, line string }{
		{"channel-nick", ":alice!~a@host.example.org PRIVMSG #ops :botmesh: echo hello world"},
		{"channel-prefix", ":alice!~a@host.example.org PRIVMSG #ops :!ping"},
		{"private", ":alice!~a@host.example.org PRIVMSG botmesh :list services"},
		{"ircv3-tags", "@account=alice_acct;msgid=m1a2b3;time=2026-01-02T03:04:05.678Z :alice!~a@host.example.org PRIVMSG #ops :botmesh, query go.micro.srv.greeter Say.Hello {\"name\":\"John\"}"},
	} {
		m, err := ircmsg.ParseLine(tc.line)
		if err != nil {
			b.Fatal(err)
		}
		ev, why := normalize(m, s, now)
		if ev == nil {
			b.Fatalf("%s: dropped: %s", tc.name, why)
		}
		// The literal copies normalize's answer field by field.
		var (
			id, to, text     = ev.GetId(), ev.GetTo(), string(ev.GetData())
			from, nick, team = ev.GetFrom().GetId(), ev.GetFrom().GetName(), ev.GetFrom().GetTeam()
			stamp            = ev.GetTime().AsTime()
			meta             = ev.GetMeta() // irc.nick, irc.target, and in a channel how to address the bot
		)
		literal := func() *chatopsv1.Event {
			return &chatopsv1.Event{
				Id:   id,
				Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE,
				From: &chatopsv1.Peer{Id: from, Name: nick, Team: team},
				To:   to,
				Data: []byte(text),
				Time: timestamppb.New(stamp),
				Meta: maps.Clone(meta),
			}
		}
		if !proto.Equal(ev, literal()) {
			b.Fatalf("%s: literal differs from %v", tc.name, ev)
		}
		b.Run(tc.name+"/path", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ev, _ := normalize(m, s, now); ev == nil {
					b.Fatal("dropped")
				}
			}
		})
		b.Run(tc.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = literal()
			}
		})
	}
}
