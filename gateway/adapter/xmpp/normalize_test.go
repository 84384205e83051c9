package xmppgw

import (
	"encoding/xml"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/botmesh/botmesh/gateway/adapter"
	"mellium.im/xmpp/jid"
)

func TestNormalize(t *testing.T) {
	room := "ops@conference.localhost"
	v := view{
		self:      jid.MustParse("bot@localhost"),
		nick:      "botmesh",
		prefix:    "!",
		rooms:     map[string]string{room: "botmesh_"},
		occupants: map[string]string{room + "/alice": "alice@localhost/phone"},
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, stanza          string
		text, to, from, reply string // want; text "" means dropped
		why                   string
	}{
		{name: "dm", stanza: `<message from="alice@localhost/phone" type="chat" id="1"><body> ping </body></message>`,
			text: "ping", to: "alice@localhost", from: "alice@localhost", reply: "alice@localhost/phone"},
		{name: "dm addressed", stanza: `<message from="alice@localhost/phone" type="chat"><body>botmesh: ping</body></message>`,
			text: "ping", to: "alice@localhost", from: "alice@localhost", reply: "alice@localhost/phone"},
		{name: "dm of type normal", stanza: `<message from="alice@localhost/phone"><body>ping</body></message>`,
			text: "ping", to: "alice@localhost", from: "alice@localhost", reply: "alice@localhost/phone"},
		{name: "room, real jid known, fallback nick", stanza: `<message from="ops@conference.localhost/alice" type="groupchat"><body>botmesh_: ping</body></message>`,
			text: "ping", to: room, from: "alice@localhost", reply: room},
		{name: "room, configured nick still addresses", stanza: `<message from="ops@conference.localhost/alice" type="groupchat"><body>@botmesh ping</body></message>`,
			text: "ping", to: room, from: "alice@localhost", reply: room},
		{name: "room, anonymous occupant", stanza: `<message from="ops@conference.localhost/carol" type="groupchat"><body>botmesh, ping</body></message>`,
			text: "ping", to: room, from: room + "/carol", reply: room},
		{name: "private message through a room", stanza: `<message from="ops@conference.localhost/alice" type="chat"><body>ping</body><x xmlns="http://jabber.org/protocol/muc#user"/></message>`,
			text: "ping", to: room + "/alice", from: "alice@localhost", reply: room + "/alice"},
		{name: "room, prefix", stanza: `<message from="ops@conference.localhost/alice" type="groupchat"><body>!ping</body></message>`,
			text: "ping", to: room, from: "alice@localhost", reply: room},
		{name: "dm, prefix", stanza: `<message from="alice@localhost/phone" type="chat"><body>!ping</body></message>`,
			text: "ping", to: "alice@localhost", from: "alice@localhost", reply: "alice@localhost/phone"},
		{name: "dm, a sentence", stanza: `<message from="alice@localhost/phone" type="chat"><body>botmesh is slow</body></message>`,
			text: "botmesh is slow", to: "alice@localhost", from: "alice@localhost", reply: "alice@localhost/phone"},
		{name: "room, nick starts a sentence", stanza: `<message from="ops@conference.localhost/alice" type="groupchat"><body>botmesh is acting up again</body></message>`, why: "not addressed to the bot"},
		{name: "room, nick without punctuation", stanza: `<message from="ops@conference.localhost/alice" type="groupchat"><body>botmesh_ ping</body></message>`, why: "not addressed to the bot"},
		{name: "room unaddressed", stanza: `<message from="ops@conference.localhost/alice" type="groupchat"><body>ping</body></message>`, why: "not addressed to the bot"},
		{name: "room own", stanza: `<message from="ops@conference.localhost/botmesh_" type="groupchat"><body>botmesh: x</body></message>`, why: "the bot's own message"},
		{name: "room history", stanza: `<message from="ops@conference.localhost/alice" type="groupchat"><body>botmesh: x</body><delay xmlns="urn:xmpp:delay" stamp="2020-01-01T00:00:00Z"/></message>`, why: "room history"},
		{name: "room not joined", stanza: `<message from="dev@conference.localhost/alice" type="groupchat"><body>botmesh: x</body></message>`, why: "room not joined"},
		{name: "own account", stanza: `<message from="bot@localhost/other" type="chat"><body>x</body></message>`, why: "the bot's own account"},
		{name: "blank", stanza: `<message from="alice@localhost/phone" type="chat"><body>botmesh:  </body></message>`, why: "blank"},
		{name: "error", stanza: `<message from="alice@localhost" type="error"><body>x</body></message>`, why: "error bounce"},
		{name: "headline", stanza: `<message from="news@localhost" type="headline"><body>x</body></message>`, why: "message type headline"},
		{name: "invite", stanza: `<message from="ops@conference.localhost"><body>join us</body><x xmlns="http://jabber.org/protocol/muc#user"/></message>`, why: "room invitation or notice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m message
			if err := xml.Unmarshal([]byte(tc.stanza), &m); err != nil {
				t.Fatal(err)
			}
			ev, why := normalize(m, v, now)
			if tc.text == "" {
				if ev != nil || why != tc.why {
					t.Errorf("got event %v (%q), want it dropped: %q", ev, why, tc.why)
				}
				return
			}
			if ev == nil {
				t.Fatalf("dropped: %s", why)
			}
			if string(ev.Data) != tc.text || ev.To != tc.to || ev.From.GetId() != tc.from || ev.Meta[MetaReplyTo] != tc.reply {
				t.Errorf("got text %q to %q from %q reply to %q; want %q %q %q %q", ev.Data, ev.To, ev.From.GetId(), ev.Meta[MetaReplyTo], tc.text, tc.to, tc.from, tc.reply)
			}
			inRoom := tc.to == room
			if got := ev.Meta[adapter.MetaRoom] == "true"; got != inRoom {
				t.Errorf("marked as a room: %v, want %v (meta %v)", got, inRoom, ev.Meta)
			}
			if want := "botmesh_: help, @botmesh_ help or !help"; inRoom && ev.Meta[adapter.MetaAddress] != want {
				t.Errorf("address %q, want %q", ev.Meta[adapter.MetaAddress], want)
			}
		})
	}
}

func TestEventIDs(t *testing.T) {
	self := jid.MustParse("bot@localhost")
	from := jid.MustParse("alice@localhost/phone")
	now := time.Now()
	a := eventID(message{ID: "x1", Type: "chat"}, from, self, now, "ping")
	if b := eventID(message{ID: "x1", Type: "chat"}, from, self, now.Add(time.Hour), "pong"); a != b {
		t.Error("a redelivered stanza (same sender and id) changed id")
	}
	if b := eventID(message{ID: "x1", Type: "chat"}, jid.MustParse("bob@localhost/phone"), self, now, "ping"); a == b {
		t.Error("two senders' stanzas with the same id share an event id")
	}
	if c, d := eventID(message{Type: "chat"}, from, self, now, "ping"), eventID(message{Type: "chat"}, from, self, now.Add(time.Second), "ping"); c == d {
		t.Error("two id-less messages at different times share an id")
	}
	room := jid.MustParse("ops@conference.localhost/alice")
	sid := message{Type: "groupchat", ID: "c1"}
	sid.StanzaIDs = append(sid.StanzaIDs, struct {
		ID string `xml:"id,attr"`
		By string `xml:"by,attr"`
	}{ID: "s1", By: "ops@conference.localhost"})
	if eventID(sid, room, self, now, "x") == eventID(message{Type: "groupchat", ID: "c1"}, room, self, now, "x") {
		t.Error("the room's stanza-id is not used")
	}
}

func TestCut(t *testing.T) {
	if got := cut("", 100); got != "(empty reply)" {
		t.Errorf("empty: %q", got)
	}
	if got := cut("short", 100); got != "short" {
		t.Errorf("short: %q", got)
	}
	long := ""
	for range 100 {
		long += "é" // two bytes each
	}
	got := cut(long, 101)
	if len(got) > 101 || got[:2] != "é" || !utf8.ValidString(got) {
		t.Errorf("cut to %d bytes: %q", len(got), got)
	}
}
