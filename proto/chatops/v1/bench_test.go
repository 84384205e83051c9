package chatopsv1_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// jsonPeer and jsonEvent are a hand-written Go equivalent of Peer and
// Event, encoded with encoding/json: the baseline. The text is a string,
// as a JSON contract would carry it.
type jsonPeer struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
	Team string `json:"team,omitempty"`
	Bot  bool   `json:"bot,omitempty"`
}

type jsonEvent struct {
	ID        string            `json:"id,omitempty"`
	Type      int32             `json:"type,omitempty"`
	From      *jsonPeer         `json:"from,omitempty"`
	To        string            `json:"to,omitempty"`
	Data      string            `json:"data,omitempty"`
	Meta      map[string]string `json:"meta,omitempty"`
	Platform  string            `json:"platform,omitempty"`
	Gateway   string            `json:"gateway,omitempty"`
	Thread    string            `json:"thread,omitempty"`
	Time      time.Time         `json:"time"`
	ReplyTo   string            `json:"reply_to,omitempty"`
	InReplyTo string            `json:"in_reply_to,omitempty"`
}

func toJSON(ev *chatopsv1.Event) *jsonEvent {
	return &jsonEvent{
		ID: ev.GetId(), Type: int32(ev.GetType()),
		From: &jsonPeer{ID: ev.GetFrom().GetId(), Name: ev.GetFrom().GetName(), Team: ev.GetFrom().GetTeam(), Bot: ev.GetFrom().GetBot()},
		To:   ev.GetTo(), Data: string(ev.GetData()), Meta: ev.GetMeta(), Platform: ev.GetPlatform(), Gateway: ev.GetGateway(),
		Thread: ev.GetThread(), Time: ev.GetTime().AsTime(), ReplyTo: ev.GetReplyTo(), InReplyTo: ev.GetInReplyTo(),
	}
}

var (
	stamp = timestamppb.New(time.Unix(1700000001, 200000000).UTC())
	meta  = map[string]string{
		"slack.ts": "1700000001.000200", "slack.event": "app_mention",
		"slack.team": "T0001", "slack.channel_type": "channel",
	}

	// message is an app mention as the Slack gateway publishes it to the
	// routers.
	message = &chatopsv1.Event{
		Id:       "Ev0MENTION1",
		Type:     chatopsv1.EventType_EVENT_TYPE_MESSAGE,
		From:     &chatopsv1.Peer{Id: "UADA0001", Name: "ada", Team: "T0001"},
		To:       "CGENERAL1",
		Data:     []byte("list services"),
		Meta:     meta,
		Platform: "slack",
		Gateway:  "gw-host-8f2k1q",
		Thread:   "1700000001.000200",
		Time:     stamp,
		ReplyTo:  "bot.v1.out.gw-host-8f2k1q.1k",
	}

	// reply is the router's answer to message, as it publishes it.
	reply = &chatopsv1.Event{
		Id:        "S0b3GZs2YVd1tT7yQw3kXq",
		Type:      chatopsv1.EventType_EVENT_TYPE_REPLY,
		From:      &chatopsv1.Peer{Id: "botmesh", Name: "botmesh", Bot: true},
		To:        "CGENERAL1",
		Data:      []byte("go.micro.bot.echo (2 nodes)\ngo.micro.bot.query (1 node)\ngo.micro.bot.registry-cmd (1 node)\ngo.micro.srv.greeter (3 nodes)"),
		Meta:      meta,
		Platform:  "slack",
		Gateway:   "gw-host-8f2k1q",
		Thread:    "1700000001.000200",
		Time:      stamp,
		InReplyTo: "Ev0MENTION1",
	}

	// longReply is a reply with a 4 KB result (a long service listing).
	longReply = func() *chatopsv1.Event {
		ev := proto.Clone(reply).(*chatopsv1.Event)
		ev.Data = []byte(strings.Repeat("go.micro.srv.inventory-service-v2 (3 nodes)\n", 94)[:4096])
		return ev
	}()
)

// BenchmarkEvent measures proto.Marshal and proto.Unmarshal of the Event
// that crosses NATS twice per message (path) against encoding/json of an
// equivalent Go struct (baseline), and a proto Event that carries only the
// text (textonly: the floor of the protobuf encoding).
func BenchmarkEvent(b *testing.B) {
	for _, tc := range []struct {
		name string
		ev   *chatopsv1.Event
	}{
		{"message", message},
		{"reply", reply},
		{"reply-4KB", longReply},
	} {
		wire, err := proto.Marshal(tc.ev)
		if err != nil {
			b.Fatal(err)
		}
		js := toJSON(tc.ev)
		jsWire, err := json.Marshal(js)
		if err != nil {
			b.Fatal(err)
		}
		textOnly := &chatopsv1.Event{Data: tc.ev.GetData()}
		textWire, err := proto.Marshal(textOnly)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: proto %d bytes, json %d bytes, text-only proto %d bytes", tc.name, len(wire), len(jsWire), len(textWire))

		b.Run("marshal/"+tc.name+"/path", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := proto.Marshal(tc.ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("marshal/"+tc.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(js); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("marshal/"+tc.name+"/textonly", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := proto.Marshal(textOnly); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("unmarshal/"+tc.name+"/path", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := &chatopsv1.Event{}
				if err := proto.Unmarshal(wire, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("unmarshal/"+tc.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := &jsonEvent{}
				if err := json.Unmarshal(jsWire, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("unmarshal/"+tc.name+"/textonly", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := &chatopsv1.Event{}
				if err := proto.Unmarshal(textWire, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
