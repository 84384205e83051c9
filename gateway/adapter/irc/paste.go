package ircgw

import (
	"strings"
	"sync"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/ergochat/irc-go/ircfmt"
	"github.com/ergochat/irc-go/ircmsg"
)

const (
	// fullLine is the length from which a line as the server relays it
	// (":nick!user@host PRIVMSG target :text\r\n") is taken for a piece of
	// a longer message that the user's client split to fit IRC's 512
	// bytes: irssi and WeeChat cut at 510 less the prefix with their own
	// user@host, so their pieces are relayed at (nearly) 512 bytes, while
	// a long line a person typed is rarely that long.
	fullLine = 480
	// pasteWindow is how long a full line waits for the next piece from
	// the same sender to the same place. WeeChat sends the pieces 2 s
	// apart (its default anti-flood delay); irssi sends up to 5 at once.
	pasteWindow = 3 * time.Second
)

// pastes joins the pieces of a message a client split into several lines
// into one event, so that a long command is one command, not one command
// and a few "unknown command" answers: a full line (see fullLine) that
// became an event is held for pasteWindow; a line from the same sender to
// the same place within the window is its next piece, appended (whether or
// not it addresses the bot, which only the first piece does), and the
// event goes on when a piece is not full or the window passes.
type pastes struct {
	emit func(*chatopsv1.Event)

	mu      sync.Mutex
	pending map[string]*paste // by sender and target
}

type paste struct {
	ev    *chatopsv1.Event
	timer *time.Timer
}

func newPastes(emit func(*chatopsv1.Event)) *pastes {
	return &pastes{emit: emit, pending: map[string]*paste{}}
}

// take handles a PRIVMSG: it returns true when the line was the next
// piece of a held message (and so is not a message of its own).
func (p *pastes) take(m ircmsg.Message) bool {
	if len(m.Params) < 2 || strings.HasPrefix(m.Params[1], "\x01") { // CTCP (/me) is no piece
		return false
	}
	key := pasteKey(m)
	p.mu.Lock()
	held, ok := p.pending[key]
	if !ok {
		p.mu.Unlock()
		return false
	}
	held.timer.Stop()
	held.ev.Data = []byte(joinPieces(string(held.ev.Data), strings.TrimSpace(ircfmt.Strip(m.Params[1]))))
	if isFull(m) {
		held.timer = time.AfterFunc(pasteWindow, func() { p.release(key, held) })
		p.mu.Unlock()
		return true
	}
	delete(p.pending, key)
	p.mu.Unlock()
	p.emit(held.ev)
	return true
}

// hold keeps ev, from line m, for its next pieces when m is a full line,
// else emits it.
func (p *pastes) hold(m ircmsg.Message, ev *chatopsv1.Event) {
	if !isFull(m) {
		p.emit(ev)
		return
	}
	key := pasteKey(m)
	held := &paste{ev: ev}
	p.mu.Lock()
	p.pending[key] = held
	held.timer = time.AfterFunc(pasteWindow, func() { p.release(key, held) })
	p.mu.Unlock()
}

// release emits a held message whose window passed.
func (p *pastes) release(key string, held *paste) {
	p.mu.Lock()
	if p.pending[key] != held {
		p.mu.Unlock()
		return
	}
	delete(p.pending, key)
	p.mu.Unlock()
	p.emit(held.ev)
}

// drop forgets the held messages (the input stops) and returns how many
// there were.
func (p *pastes) drop() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.pending)
	for key, held := range p.pending {
		held.timer.Stop()
		delete(p.pending, key)
	}
	return n
}

func pasteKey(m ircmsg.Message) string {
	return foldString(m.Nick()) + " " + foldString(m.Params[0])
}

func isFull(m ircmsg.Message) bool {
	return len(":"+m.Source+" PRIVMSG "+m.Params[0]+" :"+m.Params[1]+"\r\n") >= fullLine
}

// joinPieces appends the next piece of a split message. Clients cut
// between words where they can, and the pieces come trimmed: a space goes
// between them.
func joinPieces(a, b string) string {
	if b == "" {
		return a
	}
	return a + " " + b
}
