package ircgw

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/ergochat/irc-go/ircmsg"
)

func TestNormalize(t *testing.T) {
	s := self{nick: "botmesh_0", want: "botmesh", prefix: "!", chanTypes: "#&", network: "libera"}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, line     string
		text, to, from string // want; text "" means dropped
		why            string
	}{
		{name: "channel, current nick", line: ":alice!~a@host PRIVMSG #ops :botmesh_0: ping", text: "ping", to: "#ops", from: "nick:alice"},
		{name: "channel, configured nick", line: ":alice!~a@host PRIVMSG #ops :BOTMESH, ping", text: "ping", to: "#ops", from: "nick:alice"},
		{name: "channel, prefix", line: ":alice!~a@host PRIVMSG #ops :!ping", text: "ping", to: "#ops", from: "nick:alice"},
		{name: "channel, @nick", line: ":alice!~a@host PRIVMSG #ops :@botmesh ping", text: "ping", to: "#ops", from: "nick:alice"},
		{name: "channel, @current nick", line: ":alice!~a@host PRIVMSG #ops :@botmesh_0 ping", text: "ping", to: "#ops", from: "nick:alice"},
		{name: "channel, formatted nick", line: ":alice!~a@host PRIVMSG #ops :\x02botmesh\x02: ping", text: "ping", to: "#ops", from: "nick:alice"},
		{name: "channel, formatting stripped", line: ":alice!~a@host PRIVMSG #ops :botmesh: \x02echo\x02 \x0304hi", text: "echo hi", to: "#ops", from: "nick:alice"},
		{name: "other channel type", line: ":alice!~a@host PRIVMSG &local :!ping", text: "ping", to: "&local", from: "nick:alice"},
		{name: "private", line: ":alice!~a@host PRIVMSG botmesh_0 :ping", text: "ping", to: "alice", from: "nick:alice"},
		{name: "private, addressed", line: ":alice!~a@host PRIVMSG botmesh_0 :botmesh: ping", text: "ping", to: "alice", from: "nick:alice"},
		{name: "private, prefix", line: ":alice!~a@host PRIVMSG botmesh_0 :!ping", text: "ping", to: "alice", from: "nick:alice"},
		{name: "private, a sentence", line: ":alice!~a@host PRIVMSG botmesh_0 :botmesh is slow", text: "botmesh is slow", to: "alice", from: "nick:alice"},
		{name: "account tag", line: "@account=alice_acct;msgid=m1 :alice!~a@host PRIVMSG #ops :!ping", text: "ping", to: "#ops", from: "account:alice_acct"},
		{name: "account tag, case folded", line: "@account=Alice :Mallory!~m@host PRIVMSG #ops :!ping", text: "ping", to: "#ops", from: "account:alice"},
		{name: "no account: a nick id", line: "@account=* :Alice!~a@host PRIVMSG #ops :!ping", text: "ping", to: "#ops", from: "nick:alice"},
		{name: "nick rfc1459 case", line: ":alice!~a@host PRIVMSG #ops :BOTMESH_0: ping", text: "ping", to: "#ops", from: "nick:alice"},
		{name: "unaddressed", line: ":alice!~a@host PRIVMSG #ops :ping", why: "not addressed to the bot"},
		{name: "nick without colon", line: ":alice!~a@host PRIVMSG #ops :botmesh ping", why: "not addressed to the bot"},
		{name: "nick later", line: ":alice!~a@host PRIVMSG #ops :hey botmesh: ping", why: "not addressed to the bot"},
		{name: "nick starts a sentence", line: ":alice!~a@host PRIVMSG #ops :botmesh is acting up again", why: "not addressed to the bot"},
		{name: "prefix then punctuation", line: ":alice!~a@host PRIVMSG #ops :!!!", why: "not addressed to the bot"},
		{name: "own", line: ":botmesh_0!~b@host PRIVMSG #ops :!ping", why: "the bot's own message"},
		{name: "previous connection", line: ":botmesh!~b@host PRIVMSG #ops :!ping", why: "from the bot's configured nick (its previous connection)"},
		{name: "bot tag", line: "@bot :otherbot!~o@host PRIVMSG #ops :!ping", why: "from a bot"},
		{name: "ctcp", line: ":alice!~a@host PRIVMSG botmesh_0 :\x01VERSION\x01", why: "CTCP"},
		{name: "notice", line: ":alice!~a@host NOTICE botmesh_0 :ping", why: "not a PRIVMSG"},
		{name: "server", line: ":irc.example.net PRIVMSG #ops :!ping", why: "not from a user"},
		{name: "blank", line: ":alice!~a@host PRIVMSG #ops :botmesh:   ", why: "blank"},
		{name: "prefix alone", line: ":alice!~a@host PRIVMSG #ops :!", why: "not addressed to the bot"},
		{name: "no text", line: ":alice!~a@host PRIVMSG #ops", why: "no target or text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ircmsg.ParseLine(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			ev, why := normalize(m, s, now)
			if tc.text == "" {
				if ev != nil || why != tc.why {
					t.Errorf("got %v (%q), want it dropped: %q", ev, why, tc.why)
				}
				return
			}
			if ev == nil {
				t.Fatalf("dropped: %s", why)
			}
			if string(ev.Data) != tc.text || ev.To != tc.to || ev.From.GetId() != tc.from || ev.From.GetTeam() != "libera" || ev.Meta[MetaTarget] != tc.to {
				t.Errorf("got %q to %q from %+v; want %q to %q from %q", ev.Data, ev.To, ev.From, tc.text, tc.to, tc.from)
			}
			room := strings.HasPrefix(tc.to, "#") || strings.HasPrefix(tc.to, "&")
			if got := ev.Meta[adapter.MetaRoom] == "true"; got != room {
				t.Errorf("marked as a room: %v, want %v (meta %v)", got, room, ev.Meta)
			}
			if want := "botmesh_0: help, @botmesh_0 help or !help"; room && ev.Meta[adapter.MetaAddress] != want {
				t.Errorf("address %q, want %q", ev.Meta[adapter.MetaAddress], want)
			}
		})
	}
}

func TestEventIDs(t *testing.T) {
	s := self{nick: "bot", prefix: "!", network: "net"}
	ev := func(line string, at time.Time) string {
		m, err := ircmsg.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		e, why := normalize(m, s, at)
		if e == nil {
			t.Fatalf("%q dropped: %s", line, why)
		}
		return e.Id
	}
	now := time.Now()
	if ev("@msgid=abc :a!u@h PRIVMSG #c :!x", now) != ev("@msgid=abc :a!u@h PRIVMSG #c :!x", now.Add(time.Minute)) {
		t.Error("a redelivered line (same msgid) changed id")
	}
	if ev(":a!u@h PRIVMSG #c :!x", now) == ev(":a!u@h PRIVMSG #c :!x", now.Add(time.Second)) {
		t.Error("the same text said twice shares an id")
	}
	if ev("@time=2026-01-02T03:04:05.000Z :a!u@h PRIVMSG #c :!x", now) != ev("@time=2026-01-02T03:04:05.000Z :a!u@h PRIVMSG #c :!x", now.Add(time.Hour)) {
		t.Error("a line with server-time changed id")
	}
}

func TestSplitReply(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		max        int
		want       []string
	}{
		{"short", "pong", 100, []string{"pong"}},
		{"lines", "a\r\nb\rc\n\nd\n\n", 100, []string{"a", "b", "c", "d"}},
		{"trailing space", "a  \t\nb", 100, []string{"a", "b"}},
		{"wrap at space", "aaaa bbbb cccc", 10, []string{"aaaa bbbb", "cccc"}},
		{"hard cut", "abcdefghijkl", 5, []string{"abcde", "fghij", "kl"}},
		{"utf-8", "ééééé", 5, []string{"éé", "éé", "é"}},
		{"space far back", "a bcdefghijklmnop", 8, []string{"a bcdefg", "hijklmno", "p"}},
		{"nul", "a\x00b", 100, []string{"ab"}},
		{"blank", " \n\t\n", 100, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := splitReply(tc.text, tc.max)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("splitReply(%q, %d) = %q, want %q", tc.text, tc.max, got, tc.want)
			}
		})
	}
}

func TestCutLines(t *testing.T) {
	lines := []string{"1", "2", "3", "4", "5"}
	if got := cutLines(lines, 5); len(got) != 5 {
		t.Errorf("5 lines, max 5: %q", got)
	}
	if got := cutLines(lines, 3); strings.Join(got, "|") != "1|2|… [cut: 3 more lines not shown]" {
		t.Errorf("5 lines, max 3: %q", got)
	}
}

func TestBudget(t *testing.T) {
	relayed := len(":botmesh!~botmesh@127.0.0.1 PRIVMSG #botmesh :" + "\r\n")
	if got := budget("botmesh", "~botmesh@127.0.0.1", "#botmesh"); got != 512-relayed-8 {
		t.Errorf("budget = %d, want %d (512 less the relayed prefix and CR LF, less a margin of 8)", got, 512-relayed-8)
	}
	if budget("botmesh", "", "#botmesh") >= budget("botmesh", "~botmesh@127.0.0.1", "#botmesh") {
		t.Error("an unknown user@host is not assumed long")
	}
}

func TestOutboxPacing(t *testing.T) {
	o := newOutbox(3, time.Second)
	now := time.Unix(1000, 0)
	for i := range 3 {
		if d := o.reserve(now); d != 0 {
			t.Errorf("burst line %d waits %s", i, d)
		}
	}
	if d := o.reserve(now); d != time.Second {
		t.Errorf("4th line at once waits %s, want 1s", d)
	}
	if d := o.reserve(now); d != 2*time.Second {
		t.Errorf("5th line at once waits %s, want 2s", d)
	}
	later := now.Add(10 * time.Second) // the bucket refills to the burst, no more
	for i := range 3 {
		if d := o.reserve(later); d != 0 {
			t.Errorf("after a pause, burst line %d waits %s", i, d)
		}
	}
	if d := o.reserve(later); d <= 0 {
		t.Error("the bucket grew beyond the burst")
	}
}

func TestOutboxOrderPerTarget(t *testing.T) {
	o := newOutbox(1, 0)
	if err := o.add(batch{"#a", []string{"a1", "a2"}}); err != nil {
		t.Fatal(err)
	}
	if err := o.add(batch{"bob", []string{"b1"}}); err != nil {
		t.Fatal(err)
	}
	joined := false
	ready := func(target string) bool { return target != "#a" || joined }
	var got []string
	for {
		l, ok, _ := o.first(ready)
		if !ok {
			break
		}
		got = append(got, l.text)
		o.done(l.seq)
	}
	if strings.Join(got, "|") != "b1" {
		t.Errorf("before #a is joined: sent %q, want only b1", got)
	}
	joined = true
	for {
		l, ok, _ := o.first(ready)
		if !ok {
			break
		}
		got = append(got, l.text)
		o.done(l.seq)
	}
	if strings.Join(got, "|") != "b1|a1|a2" {
		t.Errorf("sent %q, want b1|a1|a2", got)
	}
	if err := o.add(batch{"#a", make([]string, maxQueued+1)}); err == nil {
		t.Error("a reply beyond the queue's room was taken")
	}
}

func TestSplitKeepsUTF8(t *testing.T) {
	for _, p := range splitReply(strings.Repeat("😀", 100), 10) {
		if !utf8.ValidString(p) || len(p) > 10 {
			t.Errorf("piece %q", p)
		}
	}
}

// A nick is never an account: whoever takes the nick of an admin's account
// name, or a Slack admin's user id, gets a nick id, which policies tell
// apart (irc:nick:… vs irc:account:… and slack:…). Before ids had kinds,
// both were the bare "alice" / "U024BE7LH".
func TestNickIsNotAnAccount(t *testing.T) {
	s := self{nick: "botmesh", prefix: "!", network: "libera"}
	for line, want := range map[string]string{
		":alice!~m@evil PRIVMSG #ops :!register service x":                   "nick:alice",
		":U024BE7LH!~m@evil PRIVMSG #ops :!register service x":               "nick:u024be7lh",
		"@account=alice :alice!~a@host PRIVMSG #ops :!register service x":    "account:alice",
		"@+account=alice :mallory!~m@evil PRIVMSG #ops :!register service x": "nick:mallory", // a client-only tag is not the server's
	} {
		m, err := ircmsg.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		ev, why := normalize(m, s, time.Now())
		if ev == nil {
			t.Fatalf("%q dropped: %s", line, why)
		}
		if got := ev.GetFrom().GetId(); got != want {
			t.Errorf("%q: id %q, want %q", line, got, want)
		}
	}
}
