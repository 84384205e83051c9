package ircgw

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ergochat/irc-go/ircfmt"
	"github.com/ergochat/irc-go/ircmsg"
)

// Seeds are in testdata/fuzz/<target>/: lines as servers send them and
// replies with long lines. The addressing rule is fuzzed in package
// adapter.

// FuzzNormalizeLine parses any line from a server as the connection does
// and normalises it: an event has trimmed non-empty text taken from the
// message, a sender that is not the bot, a stable id, and in a channel it
// was addressed to the bot.
func FuzzNormalizeLine(f *testing.F) {
	s := self{nick: "botmesh", want: "botmesh", prefix: "!", chanTypes: "#&", network: "test"}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line string) {
		m, err := ircmsg.ParseLine(line)
		if err != nil {
			return
		}
		ev, why := normalize(m, s, now)
		if ev == nil {
			if why == "" {
				t.Fatal("dropped without a reason")
			}
			return
		}
		data := string(ev.GetData())
		switch {
		case data == "" || data != strings.TrimSpace(data):
			t.Fatalf("text %q is blank or untrimmed", data)
		case ev.GetId() == "" || ev.GetTo() == "" || ev.GetFrom().GetName() == "":
			t.Fatalf("incomplete event %+v", ev)
		case foldEqual(ev.GetFrom().GetName(), s.nick):
			t.Fatalf("the bot's own line became an event: %q", line)
		case m.Command != "PRIVMSG":
			t.Fatalf("a %s became an event", m.Command)
		}
		if isChannel(m.Params[0], s.chanTypes) {
			if _, ok := s.addressing().Room(ircfmt.Strip(m.Params[1])); !ok {
				t.Fatalf("channel line %q was not addressed to the bot", line)
			}
			if ev.GetTo() != m.Params[0] {
				t.Fatalf("channel line answered to %q", ev.GetTo())
			}
		} else if ev.GetTo() != ev.GetFrom().GetName() {
			t.Fatalf("private line answered to %q, not the sender %q", ev.GetTo(), ev.GetFrom().GetName())
		}
		again, _ := normalize(m, s, now)
		if again.GetId() != ev.GetId() {
			t.Fatal("the id changes")
		}
	})
}

// FuzzSplitReply checks that any reply becomes lines that fit, carry no
// line breaks or NUL, stay valid UTF-8 when the reply is, and lose nothing
// but white space at wraps and line ends.
func FuzzSplitReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string, max uint16) {
		limit := int(max%500) + 16
		lines := splitReply(text, limit)
		var joined strings.Builder
		for _, l := range lines {
			switch {
			case len(l) > limit:
				t.Fatalf("line of %d bytes, limit %d", len(l), limit)
			case l == "" || strings.ContainsAny(l, "\r\n\x00"):
				t.Fatalf("line %q", l)
			case utf8.ValidString(text) && !utf8.ValidString(l):
				t.Fatalf("line %q is not valid UTF-8", l)
			}
			joined.WriteString(l)
		}
		squash := func(s string) string { // bytewise: the text may not be UTF-8
			b := []byte(s)
			out := b[:0]
			for _, c := range b {
				if c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != 0 {
					out = append(out, c)
				}
			}
			return string(out)
		}
		if squash(joined.String()) != squash(text) {
			t.Fatalf("text changed beyond white space: %q → %q", text, lines)
		}
	})
}
