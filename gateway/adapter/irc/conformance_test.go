package ircgw_test

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	ircgw "github.com/botmesh/botmesh/gateway/adapter/irc"
	"github.com/botmesh/botmesh/gateway/adapter/irc/ircdtest"
	"github.com/botmesh/botmesh/sdk/meshtest"
)

const (
	botNick = "botmesh"
	channel = "#botmesh"
)

// newInput makes an input the way the gateway does: flags parsed from a
// command line, then Init.
func newInput(t *testing.T, srv *ircdtest.Server, extra ...string) *ircgw.Input {
	t.Helper()
	args := append([]string{"--irc_server=" + srv.Addr, "--irc_nick=" + botNick, "--irc_channels=" + channel}, extra...)
	return initInput(t, args, adapter.Env{Log: meshtest.Logger(t), Prefix: adapter.DefaultPrefix})
}

func initInput(t *testing.T, args []string, env adapter.Env) *ircgw.Input {
	t.Helper()
	in := ircgw.New().(*ircgw.Input)
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	in.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := in.Init(env); err != nil {
		t.Fatal(err)
	}
	return in
}

// platform plays alice, a human with a plain IRC client, who talks to the
// bot in a channel and in private.
type platform struct {
	srv   *ircdtest.Server
	alice *ircdtest.Client
}

func (p *platform) NewInput(t *testing.T) adapter.Input {
	p.alice = p.srv.Connect(t, "alice", false)
	p.alice.Join(t, channel)
	return newInput(t, p.srv)
}

func (p *platform) Conversations() []adaptertest.Conversation {
	return []adaptertest.Conversation{{Name: "dm", Direct: true}, {Name: channel, Asker: "alice: "}}
}

func (p *platform) Say(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	p.alice.WaitMember(t, channel, botNick, 15*time.Second) // the bot is online
	if c.Direct {
		p.alice.Say(t, botNick, text)
		return
	}
	p.alice.Say(t, channel, botNick+": "+text)
}

func (p *platform) SayAsTyped(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	p.alice.WaitMember(t, channel, botNick, 15*time.Second)
	if c.Direct {
		p.alice.Say(t, botNick, text)
		return
	}
	p.alice.Say(t, channel, text)
}

func (p *platform) Addressing() adaptertest.Addressing {
	return adaptertest.Addressing{Name: botNick, Mention: "@" + botNick}
}

func (p *platform) Posted(t *testing.T, d time.Duration) adaptertest.Post {
	t.Helper()
	m := p.alice.NextFrom(t, botNick, d)
	conv := "dm"
	if strings.HasPrefix(m.Target, "#") {
		conv = m.Target
	}
	return adaptertest.Post{Conversation: conv, Text: m.Text}
}

// MaxText is what fits in a line a user sends (512 bytes with the command
// and target) and the server relays with the user's prefix.
func (p *platform) MaxText() int { return 400 }

func TestConformance(t *testing.T) {
	adaptertest.Run(t, &platform{srv: ircdtest.Start(t)})
}
