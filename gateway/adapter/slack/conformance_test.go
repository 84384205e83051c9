package slackgw_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	slackgw "github.com/botmesh/botmesh/gateway/adapter/slack"
	"github.com/botmesh/botmesh/gateway/adapter/slack/fakeslack"
)

// platform is a fake Slack workspace with a user "UADA" who talks to the
// bot in a direct message and mentions it in #general, through Socket
// Mode or, with http set, through signed Events API deliveries.
type platform struct {
	http bool
	fs   *fakeslack.Server
	in   *slackgw.Input

	mu   sync.Mutex
	said map[string]bool // ts of every message said, replies must be in one of their threads
}

const (
	user    = "UADA0001"
	general = "CGENERAL1"
	dm      = "DADA0001"
)

func (p *platform) NewInput(t *testing.T) adapter.Input {
	p.fs = fakeslack.New(t)
	p.said = map[string]bool{}
	args := []string{"--slack_listen", "127.0.0.1:0"}
	if p.http {
		args = append(args, "--slack_mode", "http")
	}
	p.in = newInput(t, p.fs, nil, args...)
	return p.in
}

func (p *platform) Conversations() []adaptertest.Conversation {
	return []adaptertest.Conversation{{Name: dm, Direct: true}, {Name: general}}
}

func (p *platform) deliver(t *testing.T, m fakeslack.Said) {
	t.Helper()
	p.mu.Lock()
	p.said[m.TS] = true
	p.mu.Unlock()
	if p.http {
		deadline := time.Now().Add(10 * time.Second)
		for p.in.Addr() == nil {
			if time.Now().After(deadline) {
				t.Fatal("the http mode is not listening after 10s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if code, body := p.fs.Deliver(t, eventsURL(p.in), "application/json", m.Callback, nil); code != http.StatusOK {
			t.Fatalf("delivery answered %d %q", code, body)
		}
		return
	}
	p.fs.WaitAccepted(t, 1, 10*time.Second)
	id := p.fs.Send(t, m.Envelope())
	p.fs.WaitAck(t, id, 5*time.Second)
}

func (p *platform) Say(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	if c.Direct {
		p.deliver(t, p.fs.DM(c.Name, user, text, ""))
		return
	}
	p.deliver(t, p.fs.Mention(c.Name, user, text, ""))
}

func (p *platform) SayAsTyped(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	kind := "channel"
	if c.Direct {
		kind = "im"
	}
	for _, m := range p.fs.Typed(c.Name, kind, user, text) {
		p.deliver(t, m)
	}
}

// Addressing: the fake's bot user is botmesh (auth.test), UBOT0001.
func (p *platform) Addressing() adaptertest.Addressing {
	return adaptertest.Addressing{Name: "botmesh", Mention: "<@" + fakeslack.DefaultBotUserID + ">"}
}

func (p *platform) SayAsBot(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	kind := "channel"
	if c.Direct {
		kind = "im"
	}
	p.deliver(t, p.fs.BotSays(c.Name, kind, text))
	p.deliver(t, p.fs.SelfSays(c.Name, kind, text))
}

func (p *platform) Posted(t *testing.T, d time.Duration) adaptertest.Post {
	t.Helper()
	m := p.fs.NextPost(t, d)
	p.mu.Lock()
	inThread := p.said[m.ThreadTS]
	p.mu.Unlock()
	if m.Method != "chat.postMessage" || !inThread {
		t.Errorf("bot posted %q with %s in thread %q; want chat.postMessage in the thread of a message said", m.Visible(), m.Method, m.ThreadTS)
	}
	return adaptertest.Post{Conversation: m.Channel, Text: m.Visible()}
}

// MaxText is Slack's limit on a message's text.
func (p *platform) MaxText() int { return 40000 }

func TestConformanceSocketMode(t *testing.T) { adaptertest.Run(t, &platform{}) }

func TestConformanceEventsAPI(t *testing.T) { adaptertest.Run(t, &platform{http: true}) }
