package xmppgw

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	"mellium.im/xmpp/jid"
)

// Meta keys the input sets on events; Send reads them back from replies.
const (
	// MetaType is the XMPP message type: "chat" or "groupchat".
	MetaType = "xmpp.type"
	// MetaReplyTo is the full JID replies go to: the user's resource that
	// wrote (chat), or the room (groupchat).
	MetaReplyTo = "xmpp.reply_to"
	// MetaNick is the sender's nickname in a room.
	MetaNick = "xmpp.nick"
)

// message is an incoming message stanza, as much of it as the input uses.
type message struct {
	ID      string    `xml:"id,attr"`
	From    string    `xml:"from,attr"`
	Type    string    `xml:"type,attr"`
	Body    []string  `xml:"body"`
	Subject *struct{} `xml:"subject"`
	Thread  string    `xml:"thread"`
	Delay   *struct {
		Stamp string `xml:"stamp,attr"`
	} `xml:"urn:xmpp:delay delay"`
	StanzaIDs []struct {
		ID string `xml:"id,attr"`
		By string `xml:"by,attr"`
	} `xml:"urn:xmpp:sid:0 stanza-id"`
	Error      *struct{} `xml:"error"`
	MUCUser    *struct{} `xml:"http://jabber.org/protocol/muc#user x"`
	Conference *struct{} `xml:"jabber:x:conference x"`
}

// view is what the normaliser knows about the connection.
type view struct {
	// self is the bot's bare JID.
	self jid.JID
	// nick is the configured room nickname.
	nick string
	// prefix addresses the bot in a room ("!ping"); empty: none.
	prefix string
	// rooms maps each joined room (bare JID) to the bot's nickname there.
	rooms map[string]string
	// occupants maps room occupants (room@service/nick) to their real
	// bare JIDs, where the room shows them.
	occupants map[string]string
}

// normalize turns an incoming message into an Event, or returns nil and
// why it is not one (a message in a room that does not address the bot,
// the bot's own message, a blank one, room history, an error bounce…).
// now stamps messages that carry no delay.
func normalize(m message, v view, now time.Time) (*chatopsv1.Event, string) {
	if m.From == "" {
		return nil, "no sender (from the bot's own account)"
	}
	from, err := jid.Parse(m.From)
	if err != nil {
		return nil, "malformed sender address"
	}
	if m.Type == "error" || m.Error != nil {
		return nil, "error bounce"
	}
	if m.Conference != nil || m.MUCUser != nil && from.Resourcepart() == "" {
		return nil, "room invitation or notice"
	}
	body := ""
	if len(m.Body) > 0 {
		body = m.Body[0]
	}
	if body == "" {
		return nil, "no body"
	}
	stamp := now
	if m.Delay != nil {
		if t, err := time.Parse(time.RFC3339Nano, m.Delay.Stamp); err == nil {
			stamp = t
		}
	}
	ev := &chatopsv1.Event{
		Type:   chatopsv1.EventType_EVENT_TYPE_MESSAGE,
		Thread: m.Thread,
		Time:   timestamppb.New(stamp),
		Meta:   map[string]string{},
	}
	var text, convID string
	switch m.Type {
	case "groupchat":
		room := from.Bare().String()
		mine, joined := v.rooms[room]
		switch {
		case !joined:
			return nil, "room not joined"
		case from.Resourcepart() == "":
			return nil, "from the room itself"
		case from.Resourcepart() == mine:
			return nil, "the bot's own message"
		case m.Delay != nil:
			return nil, "room history"
		case m.Subject != nil:
			return nil, "room subject"
		}
		addr := adapter.Addressing{Names: []string{mine, v.nick}, Prefix: v.prefix}
		rest, addressed := addr.Room(body)
		if !addressed {
			return nil, "not addressed to the bot"
		}
		text, convID = rest, room
		addr.MarkRoom(ev.Meta)
		ev.From = occupant(from, v)
		ev.Meta[MetaType] = "groupchat"
		ev.Meta[MetaReplyTo] = room
		ev.Meta[MetaNick] = from.Resourcepart()
	case "chat", "normal", "":
		if from.Bare().Equal(v.self) {
			return nil, "the bot's own account"
		}
		if _, isRoom := v.rooms[from.Bare().String()]; isRoom {
			// A private message through a room: the reply goes back
			// through the room to the occupant.
			ev.From = occupant(from, v)
			ev.Meta[MetaNick] = from.Resourcepart()
			convID = from.String()
		} else {
			ev.From = &chatopsv1.Peer{Id: from.Bare().String(), Name: from.Localpart(), Team: from.Domainpart()}
			convID = from.Bare().String()
		}
		text = adapter.Addressing{Names: []string{v.nick}, Prefix: v.prefix}.Direct(body)
		ev.Meta[MetaType] = "chat"
		ev.Meta[MetaReplyTo] = from.String()
	default:
		return nil, "message type " + m.Type
	}
	if ev.From.Id == v.self.String() {
		return nil, "the bot's own account"
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, "blank"
	}
	ev.To = convID
	ev.Data = []byte(text)
	ev.Id = eventID(m, from, v.self, stamp, body)
	return ev, ""
}

// occupant returns the peer behind a room occupant: its real bare JID
// where the room shows it, else the occupant address (stable while the
// occupant keeps its nickname).
func occupant(from jid.JID, v view) *chatopsv1.Peer {
	if real, ok := v.occupants[from.String()]; ok && real != "" {
		if j, err := jid.Parse(real); err == nil {
			return &chatopsv1.Peer{Id: j.Bare().String(), Name: from.Resourcepart(), Team: j.Domainpart()}
		}
	}
	return &chatopsv1.Peer{Id: from.String(), Name: from.Resourcepart(), Team: from.Domainpart()}
}

// eventID derives the event id from the stanza, so that a redelivered
// stanza keeps it: the server-assigned stanza-id (XEP-0359) of the room or
// of the bot's archive where there is one, else the sender's stanza id
// (unique per sender), else a hash of sender, time and text.
func eventID(m message, from, self jid.JID, stamp time.Time, body string) string {
	by := self.String()
	if m.Type == "groupchat" {
		by = from.Bare().String()
	}
	for _, sid := range m.StanzaIDs {
		if sid.By == by && sid.ID != "" {
			return hash("sid", by, sid.ID)
		}
	}
	if m.ID != "" {
		return hash("id", from.String(), m.ID)
	}
	return hash("text", from.String(), stamp.UTC().Format(time.RFC3339Nano), body)
}

func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "xmpp-" + hex.EncodeToString(h.Sum(nil)[:16])
}
