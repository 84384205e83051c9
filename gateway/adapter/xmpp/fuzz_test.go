package xmppgw

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/botmesh/botmesh/gateway/adapter"
	"mellium.im/xmpp/jid"
)

// Seeds are in testdata/fuzz/<target>/: stanzas as Prosody sends them.
// The addressing rule is fuzzed in package adapter.

// FuzzNormalize decodes any stanza as the session does and normalises it:
// whatever comes in, an event has a trimmed non-empty text taken from the
// body, an id that is stable for the same stanza, a sender that is not the
// bot, and a room message is one that addressed the bot.
func FuzzNormalize(f *testing.F) {
	self := jid.MustParse("bot@localhost")
	room := "ops@conference.localhost"
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		var m message
		if err := xml.Unmarshal([]byte(raw), &m); err != nil {
			return
		}
		v := view{
			self:      self,
			nick:      "botmesh",
			prefix:    "!",
			rooms:     map[string]string{room: "botmesh"},
			occupants: map[string]string{room + "/alice": "alice@localhost/phone"},
		}
		ev, why := normalize(m, v, now)
		if ev == nil {
			if why == "" {
				t.Fatal("dropped without a reason")
			}
			return
		}
		data := string(ev.GetData())
		body := m.Body[0]
		switch {
		case data == "" || data != strings.TrimSpace(data):
			t.Fatalf("text %q is blank or untrimmed", data)
		case !strings.Contains(body, data):
			t.Fatalf("text %q is not from the body %q", data, body)
		case ev.GetId() == "" || ev.GetTo() == "" || ev.GetFrom().GetId() == "":
			t.Fatalf("incomplete event %+v", ev)
		case ev.GetFrom().GetId() == self.String():
			t.Fatalf("the bot's own message became an event: %s", raw)
		case !utf8.ValidString(ev.GetId()):
			t.Fatalf("id %q", ev.GetId())
		}
		if m.Type == "groupchat" {
			if _, ok := (adapter.Addressing{Names: []string{"botmesh"}, Prefix: "!"}).Room(body); !ok {
				t.Fatalf("room message %q does not address the bot", body)
			}
			if ev.GetTo() != room || ev.GetMeta()[MetaReplyTo] != room {
				t.Fatalf("room message answered to %q/%q", ev.GetTo(), ev.GetMeta()[MetaReplyTo])
			}
		}
		again, _ := normalize(m, v, now)
		if again.GetId() != ev.GetId() {
			t.Fatalf("id changes: %s then %s", ev.GetId(), again.GetId())
		}
	})
}
