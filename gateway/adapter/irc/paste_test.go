package ircgw

import (
	"strings"
	"sync"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/ergochat/irc-go/ircmsg"
)

// The pieces of a split message are joined per sender and place; a short
// line is emitted at once, a full one when its last piece came or its
// window passed; a CTCP action is never a piece.
func TestPastes(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	emitted := make(chan struct{}, 10)
	p := newPastes(func(ev *chatopsv1.Event) {
		mu.Lock()
		got = append(got, string(ev.Data))
		mu.Unlock()
		emitted <- struct{}{}
	})
	full := strings.Repeat("x", 450)
	line := func(from, target, text string) ircmsg.Message {
		m, err := ircmsg.ParseLine(":" + from + "!~u@127.0.0.1 PRIVMSG " + target + " :" + text)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	say := func(from, target, text string) {
		m := line(from, target, text)
		if !p.take(m) {
			p.hold(m, &chatopsv1.Event{Data: []byte(text)})
		}
	}
	wait := func(n int) []string {
		t.Helper()
		for range n {
			select {
			case <-emitted:
			case <-time.After(2 * pasteWindow):
				t.Fatalf("only %d of %d events emitted", len(got), n)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		out := got
		got = nil
		return out
	}
	say("alice", "bot", "ping")
	if g := wait(1); g[0] != "ping" {
		t.Errorf("a short line: %q", g)
	}
	say("alice", "bot", full)
	say("bob", "bot", "hi")           // another sender: a message of its own
	say("alice", "#ops", "elsewhere") // another place: the same
	say("alice", "bot", "\x01ACTION waves\x01")
	say("alice", "bot", full)
	say("alice", "bot", "end")
	g := wait(4)
	want := []string{"hi", "elsewhere", "\x01ACTION waves\x01", full + " " + full + " end"}
	if strings.Join(g, "|") != strings.Join(want, "|") {
		t.Errorf("events %.80q…, want %.80q…", g, want)
	}
	began := time.Now()
	say("alice", "bot", full)
	if g := wait(1); g[0] != full || time.Since(began) < pasteWindow {
		t.Errorf("a full line alone: %d bytes after %s, want it whole after the window (%s)", len(g[0]), time.Since(began), pasteWindow)
	}
	say("alice", "bot", full)
	if n := p.drop(); n != 1 {
		t.Errorf("drop: %d held, want 1", n)
	}
	select {
	case <-emitted:
		t.Error("a dropped message was emitted")
	case <-time.After(pasteWindow + time.Second):
	}
}
