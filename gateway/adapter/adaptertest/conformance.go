package adaptertest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

// Platform drives one chat platform for the conformance suite: it plays the
// users and reads what the bot posts, through the platform's own protocol
// (a fake Slack speaking Slack's wire protocol, a real XMPP or IRC server, a
// real browser, a pipe for the shell).
type Platform interface {
	// NewInput returns a new input, flags set and Init'ed against the
	// platform, not started.
	NewInput(t *testing.T) adapter.Input
	// Conversations are where the suite talks to the bot: at least one
	// direct conversation, and a group one where the platform has them.
	Conversations() []Conversation
	// Say makes a human user say text to the bot in c (mentioning the bot
	// where the platform requires it to be addressed).
	Say(t *testing.T, c Conversation, text string)
	// SayAsTyped makes the same user say text in c exactly as written,
	// adding no mention: the suite checks the addressing rule with it.
	SayAsTyped(t *testing.T, c Conversation, text string)
	// Addressing says how users address the bot on the platform.
	Addressing() Addressing
	// Posted returns the next message the bot posted, failing t after d.
	Posted(t *testing.T, d time.Duration) Post
	// MaxText is the longest text a user can send on the platform.
	MaxText() int
}

// BotSayer is a Platform on which bots (the bot itself among them) can
// post; the input must ignore what they say.
type BotSayer interface {
	SayAsBot(t *testing.T, c Conversation, text string)
}

// Conversation is a place to talk to the bot.
type Conversation struct {
	// Name identifies it on the platform; Post.Conversation reports the
	// same name for messages posted there.
	Name string
	// Direct is true for a one-to-one conversation.
	Direct bool
	// Asker is how the bot names the user before its replies there
	// ("alice: "), empty where it names nobody.
	Asker string
}

// Addressing is how users address the bot on a platform (see
// adapter.Addressing); the suite's inputs use the prefix "!"
// (adapter.DefaultPrefix).
type Addressing struct {
	// Name is the bot's name in rooms ("botmesh"): "botmesh: ping"; empty
	// where it has none.
	Name string
	// Mention is a mention of the bot as the platform delivers it:
	// "@botmesh" on IRC and XMPP, "<@UBOT0001>" on Slack; empty where
	// there is none.
	Mention string
}

// Post is a message the bot posted.
type Post struct {
	Conversation string
	Text         string
}

// Run runs the conformance suite against p. Every input runs it.
func Run(t *testing.T, p Platform) {
	t.Run("round trip", func(t *testing.T) { roundTrip(t, p) })
	t.Run("addressing", func(t *testing.T) { addressing(t, p) })
	t.Run("bot messages ignored", func(t *testing.T) {
		bs, ok := p.(BotSayer)
		if !ok {
			t.Log("the platform has no bots to ignore")
			return
		}
		h := start(t, p, gateway.Config{})
		c := p.Conversations()[0]
		bs.SayAsBot(t, c, "i am a bot")
		p.Say(t, c, "after the bot")
		ev := h.event(t)
		if got := string(ev.GetData()); got != "after the bot" {
			t.Errorf("first event %q; a bot's message was not ignored", got)
		}
		p.Posted(t, 10*time.Second)
	})
	t.Run("empty and huge messages", func(t *testing.T) {
		const limit = 200
		h := start(t, p, gateway.Config{MaxMessageBytes: limit})
		c := p.Conversations()[0]
		p.Say(t, c, "   ")
		huge := strings.Repeat("x", min(p.MaxText(), 4*limit))
		p.Say(t, c, huge)
		p.Say(t, c, "after")
		post := p.Posted(t, 10*time.Second)
		if !strings.HasPrefix(post.Text, "message too long: ") || !strings.HasSuffix(post.Text, fmt.Sprintf("the limit is %d", limit)) {
			t.Errorf("huge message: bot posted %q, want the too-long notice", post.Text)
		}
		ev := h.event(t)
		if got := string(ev.GetData()); got != "after" {
			t.Errorf("event %q reached the router; want only \"after\" (blank and huge messages must not)", truncate(got))
		}
		if post := p.Posted(t, 10*time.Second); post.Text != "re: after" {
			t.Errorf("reply %q, want \"re: after\"", post.Text)
		}
	})
	t.Run("stop is prompt and leaves no goroutine", func(t *testing.T) {
		h := start(t, p, gateway.Config{ShutdownGrace: 2 * time.Second})
		c := p.Conversations()[0]
		p.Say(t, c, "hello")
		h.event(t)
		p.Posted(t, 10*time.Second)
		began := time.Now()
		h.stop(t)
		if d := time.Since(began); d > 3*time.Second {
			t.Errorf("stop took %s", d)
		}
		goleak.VerifyNone(t, h.before)
	})
}

func roundTrip(t *testing.T, p Platform) {
	h := start(t, p, gateway.Config{})
	var from string
	for i, c := range p.Conversations() {
		text := fmt.Sprintf("ping %d", i)
		p.Say(t, c, text)
		ev := h.event(t)
		if string(ev.GetData()) != text {
			t.Errorf("%s: event data %q, want %q (the mention stripped)", c.Name, ev.GetData(), text)
		}
		if ev.GetPlatform() != h.in.String() || ev.GetType() != chatopsv1.EventType_EVENT_TYPE_MESSAGE || ev.GetId() == "" || ev.GetTo() == "" || ev.GetFrom().GetId() == "" || ev.GetFrom().GetBot() {
			t.Errorf("%s: event fields: %+v", c.Name, ev)
		}
		if from == "" {
			from = ev.GetFrom().GetId()
		} else if ev.GetFrom().GetId() != from {
			t.Errorf("%s: the same user has id %q here and %q before", c.Name, ev.GetFrom().GetId(), from)
		}
		post := p.Posted(t, 10*time.Second)
		if want := c.Asker + "re: " + text; post.Text != want || post.Conversation != c.Name {
			t.Errorf("%s: bot posted %q in %q, want %q there", c.Name, post.Text, post.Conversation, want)
		}
	}
}

// addressing checks the rule of adapter.Addressing through the platform:
// in a room the bot takes "@bot cmd" (the platform's mention), "bot: cmd",
// "bot, cmd" and "!cmd", and is silent on anything else, its name starting
// a sentence included; in a direct conversation it takes everything, a
// leading address dropped. Room events are marked (adapter.MetaRoom) with
// how to address the bot there (adapter.MetaAddress); direct ones are not.
func addressing(t *testing.T, p Platform) {
	h := start(t, p, gateway.Config{})
	a := p.Addressing()
	for _, c := range p.Conversations() {
		var said, silent []string
		said = append(said, "!ping")
		if a.Mention != "" {
			said = append(said, a.Mention+" ping")
		}
		if a.Name != "" {
			said = append(said, a.Name+": ping", a.Name+", ping")
			silent = append(silent, a.Name+" is acting up again", a.Name+" ping")
		}
		silent = append(silent, "ping", "!!!")
		if c.Direct {
			said = append(said, "ping")
			silent = nil
		}
		for i, text := range said {
			if i == 0 {
				for _, s := range silent {
					p.SayAsTyped(t, c, s)
				}
			}
			p.SayAsTyped(t, c, text)
			ev := h.event(t)
			if got := string(ev.GetData()); got != "ping" {
				t.Errorf("%s: %q gave the event %q, want \"ping\" (after %q, which must not reach the router)", c.Name, text, got, silent)
			}
			room, addr := ev.GetMeta()[adapter.MetaRoom], ev.GetMeta()[adapter.MetaAddress]
			if c.Direct && (room != "" || addr != "") {
				t.Errorf("%s: a direct message marked as a room: %q %q", c.Name, room, addr)
			}
			if !c.Direct && (room != "true" || !strings.Contains(addr, "!help")) {
				t.Errorf("%s: a room message marked %s=%q %s=%q, want true and how to address the bot", c.Name, adapter.MetaRoom, room, adapter.MetaAddress, addr)
			}
			if post := p.Posted(t, 10*time.Second); post.Text != c.Asker+"re: ping" || post.Conversation != c.Name {
				t.Errorf("%s: %q: bot posted %q in %q, want %q", c.Name, text, post.Text, post.Conversation, c.Asker+"re: ping")
			}
		}
	}
}

// harness is a gateway running one input against an embedded NATS server
// with a fake router that answers "re: <text>".
type harness struct {
	in     adapter.Input
	events chan *chatopsv1.Event
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	before goleak.Option // the goroutines that ran before the gateway
}

func start(t *testing.T, p Platform, cfg gateway.Config) *harness {
	t.Helper()
	s := meshtest.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h := &harness{in: p.NewInput(t), events: make(chan *chatopsv1.Event, 100), done: make(chan error, 1)}
	_, err = nc.Subscribe(chatopsv1.SubjectInAll, func(m *nats.Msg) {
		ev := &chatopsv1.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			t.Errorf("malformed event: %v", err)
			return
		}
		h.events <- ev
		rep, _ := proto.Marshal(&chatopsv1.Event{
			Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte("re: " + string(ev.Data)),
			InReplyTo: ev.Id, To: ev.To, Thread: ev.Thread, Meta: ev.Meta, Platform: ev.Platform, Gateway: ev.Gateway,
		})
		_ = nc.Publish(ev.ReplyTo, rep)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the fake router is subscribed
		t.Fatal(err)
	}
	h.before = goleak.IgnoreCurrent()
	gnc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Delivery = durable.Core // the fake router above is a core subscriber
	if cfg.DedupWindow == 0 {
		// The JetStream bucket would start server goroutines in this
		// process that the leak check would blame on the input.
		cfg.DedupWindow = -1
	}
	g, err := gateway.New(gnc, []adapter.Input{h.in}, cfg, meshtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.done <- g.Run(ctx)
		gnc.Close()
	}()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) event(t *testing.T) *chatopsv1.Event {
	t.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event reached the router within 10s")
		return nil
	}
}

func (h *harness) stop(t *testing.T) {
	h.once.Do(func() {
		h.cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("gateway: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("gateway did not stop within 10s")
		}
	})
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
