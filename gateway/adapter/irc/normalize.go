package ircgw

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/ergochat/irc-go/ircfmt"
	"github.com/ergochat/irc-go/ircmsg"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Meta keys the input sets on events; Send reads them back from replies.
const (
	// MetaTarget is where replies go: the channel, or the sender's nick
	// for a private message.
	MetaTarget = "irc.target"
	// MetaNick is the sender's nick.
	MetaNick = "irc.nick"
)

// Kinds of user id (Peer.id) the input gives senders. A logged-in user
// (the server's account tag, IRCv3 account-tag, set for SASL and services
// logins) is "account:NAME"; anyone else is "nick:NICK", which whoever
// takes the nick next also gets. Policies name them irc:account:NAME and
// irc:nick:NICK, so a nick never passes for an account, nor for another
// platform's id. Both are ASCII lower-case: every IRC case mapping folds
// ASCII letters, so "Alice" and "alice" are one nick (one account).
const (
	IDAccount = "account:"
	IDNick    = "nick:"
)

// self is what the normaliser knows about the connection.
type self struct {
	// nick is the bot's current nick.
	nick string
	// want is the configured nick: while the bot uses a fallback (nick_0)
	// the configured one is usually its own previous connection that the
	// server has not dropped yet, and users keep addressing it.
	want string
	// prefix starts commands in channels ("!"); empty: none.
	prefix string
	// chanTypes are the characters that start channel names (ISUPPORT
	// CHANTYPES); empty means "#".
	chanTypes string
	// network names the IRC network (ISUPPORT NETWORK, else the server).
	network string
}

// normalize turns a line from the server into an Event, or returns nil
// and why it is not one: only PRIVMSGs from users count; in a channel the
// bot must be addressed (adapter.Addressing: "nick: cmd", "nick, cmd",
// "@nick cmd" or the prefix); private messages always count. now stamps
// lines without a server-time tag.
func normalize(m ircmsg.Message, s self, now time.Time) (*chatopsv1.Event, string) {
	if m.Command != "PRIVMSG" {
		return nil, "not a PRIVMSG"
	}
	if len(m.Params) < 2 {
		return nil, "no target or text"
	}
	nuh, err := m.NUH()
	if err != nil || nuh.Name == "" || nuh.User == "" && strings.Contains(nuh.Name, ".") {
		return nil, "not from a user"
	}
	nick := nuh.Name
	if foldEqual(nick, s.nick) {
		return nil, "the bot's own message"
	}
	if foldEqual(nick, s.want) {
		return nil, "from the bot's configured nick (its previous connection)"
	}
	if ok, _ := m.GetTag("bot"); ok {
		return nil, "from a bot"
	}
	if ok, _ := m.GetTag("draft/bot"); ok {
		return nil, "from a bot"
	}
	target, text := m.Params[0], m.Params[1]
	if strings.HasPrefix(text, "\x01") {
		return nil, "CTCP"
	}
	ev := &chatopsv1.Event{
		Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE,
		Meta: map[string]string{MetaNick: nick},
	}
	addr := s.addressing()
	room := isChannel(target, s.chanTypes)
	cmd, ok := addr.Command(ircfmt.Strip(text), room)
	if !ok {
		return nil, "not addressed to the bot"
	}
	text = cmd
	if room {
		ev.To = target
		addr.MarkRoom(ev.Meta)
	} else {
		ev.To = nick
	}
	ev.Meta[MetaTarget] = ev.To
	if text == "" {
		return nil, "blank"
	}
	ev.Data = []byte(text)
	id := IDNick + asciiLower(nick)
	if ok, account := m.GetTag("account"); ok && account != "" && account != "*" {
		id = IDAccount + asciiLower(account)
	}
	ev.From = &chatopsv1.Peer{Id: id, Name: nick, Team: s.network}
	stamp := now
	if ok, t := m.GetTag("time"); ok {
		if parsed, err := time.Parse(time.RFC3339Nano, t); err == nil {
			stamp = parsed
		}
	}
	ev.Time = timestamppb.New(stamp)
	if ok, msgid := m.GetTag("msgid"); ok && msgid != "" {
		ev.Id = hash("msgid", s.network, msgid)
	} else {
		ev.Id = hash("line", s.network, m.Source, target, stamp.UTC().Format(time.RFC3339Nano), m.Params[1])
	}
	return ev, ""
}

func isChannel(target, chanTypes string) bool {
	if chanTypes == "" {
		chanTypes = "#"
	}
	return target != "" && strings.IndexByte(chanTypes, target[0]) >= 0
}

func hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "irc-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// addressing is the rule (adapter.Addressing) with the bot's names: its
// nick, and the configured one while it uses a fallback.
func (s self) addressing() adapter.Addressing {
	names := []string{s.nick}
	if s.want != "" && !foldEqual(s.want, s.nick) {
		names = append(names, s.want)
	}
	return adapter.Addressing{Names: names, Prefix: s.prefix, Fold: foldEqual}
}

// foldEqual compares nicks under IRC's rfc1459 case mapping: ASCII letters
// and []\~ are the upper case of {}|^.
func foldEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if fold(a[i]) != fold(b[i]) {
			return false
		}
	}
	return true
}

// asciiLower lower-cases ASCII letters only: a wider folding (rfc1459's
// []\~, Unicode) could make two names the server tells apart one id.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func fold(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	case c == '[':
		return '{'
	case c == ']':
		return '}'
	case c == '\\':
		return '|'
	case c == '~':
		return '^'
	}
	return c
}
