package slackgw

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkNormalizeEvent measures normalizeEvent, what the Slack input
// does with each Events API delivery (path: JSON decode, checks, mention
// stripping, Event build), against building the resulting Event as a
// struct literal (baseline), and against the two json.Unmarshal calls alone
// (jsononly: the decoding that any normaliser of this JSON pays).
func BenchmarkNormalizeEvent(b *testing.B) {
	for _, name := range []string{"app_mention", "app_mention_markup", "app_mention_json_argument", "message_im"} {
		raw, err := os.ReadFile("testdata/events/" + name + ".json")
		if err != nil {
			b.Fatal(err)
		}
		wantJSON, err := os.ReadFile("testdata/events/" + name + ".want.json")
		if err != nil {
			b.Fatal(err)
		}
		var w want
		if err := json.Unmarshal(wantJSON, &w); err != nil {
			b.Fatal(err)
		}
		tm, err := time.Parse(time.RFC3339Nano, w.Time)
		if err != nil {
			b.Fatal(err)
		}
		literal := func() *chatopsv1.Event {
			ev := &chatopsv1.Event{
				Id:     w.ID,
				From:   &chatopsv1.Peer{Id: w.From.ID, Name: w.From.Name, Team: w.From.Team},
				To:     w.To,
				Data:   []byte(w.Data),
				Thread: w.Thread,
				Time:   timestamppb.New(tm),
				Meta:   make(map[string]string, len(w.Meta)),
			}
			for k, v := range w.Meta {
				ev.Meta[k] = v
			}
			return ev
		}
		ev, skip, err := normalizeEvent(raw, fixtureBot)
		if err != nil || ev == nil {
			b.Fatalf("%s: ignored (%q) or failed: %v", name, skip, err)
		}
		if exp := literal(); !proto.Equal(ev, exp) {
			b.Fatalf("%s: normalizeEvent gives %v, the literal %v", name, ev, exp)
		}

		b.Run(name+"/path", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if ev, _, _ := normalizeEvent(raw, fixtureBot); ev == nil {
					b.Fatal("no event")
				}
			}
		})
		b.Run(name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = literal()
			}
		})
		b.Run(name+"/jsononly", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				var cb callback
				if err := json.Unmarshal(raw, &cb); err != nil {
					b.Fatal(err)
				}
				var in innerEvent
				if err := json.Unmarshal(cb.Event, &in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlainText measures plainText, the mention stripping and markup
// rendering of every message text (path), against cutting a leading
// mention of the bot and trimming (baseline).
func BenchmarkPlainText(b *testing.B) {
	const mention = "<@" + "UBOT0001" + ">"
	for _, tc := range []struct{ name, text string }{
		{"plain", "ping"},
		{"mention", mention + " list services"},
		{"json", mention + ` query greeter Greeter.Hello {"name": "Ada &amp; Bea"}`},
		{"markup", "query <#C0DEPLOY|deploys> for <@UBEA0002> and <!here> at <https://example.com/x?a=1&amp;b=2|example.com/x?a=1&amp;b=2> <https://go.dev> <mailto:ada@example.com|ada@example.com> <!subteam^S0OPS|@ops> " + mention},
		{"4KB", mention + " echo " + strings.Repeat("2026-01-02T03:04:05.123Z INFO request served path=/api/v1/items status=200 took=12ms\n", 49)[:4080]},
	} {
		b.Run(tc.name+"/path", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = plainText(tc.text, fixtureBot.UserID)
			}
		})
		b.Run(tc.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = strings.TrimSpace(strings.TrimPrefix(tc.text, mention))
			}
		})
	}
}
