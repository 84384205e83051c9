package xmppgw_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	xmppgw "github.com/botmesh/botmesh/gateway/adapter/xmpp"
	"github.com/botmesh/botmesh/gateway/adapter/xmpp/prosodytest"
	"github.com/botmesh/botmesh/sdk/meshtest"
)

const (
	botPassword   = "b0t-s3cret-Pa55"
	alicePassword = "alice-pw"
	bobPassword   = "bob-pw"
	botNick       = "botmesh"
)

var botJID = prosodytest.JID("bot")

func startProsody(t *testing.T) *prosodytest.Server {
	t.Helper()
	return prosodytest.Start(t, map[string]string{"bot": botPassword, "alice": alicePassword, "bob": bobPassword})
}

// newInput makes an input the way the gateway does: flags parsed from a
// command line, the password in a file, then Init.
func newInput(t *testing.T, srv *prosodytest.Server, extra ...string) *xmppgw.Input {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(botPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--xmpp_jid=" + botJID,
		"--xmpp_password_file=" + pw,
		"--xmpp_server=" + srv.Addr,
		"--xmpp_ca_file=" + srv.CAFile,
		"--xmpp_nick=" + botNick,
	}, extra...)
	return initInput(t, args, adapter.Env{Log: meshtest.Logger(t), Prefix: adapter.DefaultPrefix})
}

func initInput(t *testing.T, args []string, env adapter.Env) *xmppgw.Input {
	t.Helper()
	in := xmppgw.New().(*xmppgw.Input)
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

// platform plays alice, a human with a real XMPP client, who talks to the
// bot directly and in a room.
type platform struct {
	srv   *prosodytest.Server
	room  string
	alice *prosodytest.Client
	other *prosodytest.Client // the bot's own account, another resource
}

func (p *platform) NewInput(t *testing.T) adapter.Input {
	p.alice = p.srv.Login(t, "alice", alicePassword)
	p.alice.Subscribe(t, botJID) // to see when the bot is online
	p.alice.Join(t, p.room, "alice")
	p.other = p.srv.LoginUnavailable(t, "bot", botPassword)
	return newInput(t, p.srv, "--xmpp_rooms="+p.room)
}

func (p *platform) Conversations() []adaptertest.Conversation {
	return []adaptertest.Conversation{{Name: "dm", Direct: true}, {Name: p.room, Asker: "alice: "}}
}

func (p *platform) Say(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	if c.Direct {
		p.alice.WaitOnline(t, botJID, 15*time.Second)
		p.alice.Say(t, botJID, text)
		return
	}
	p.alice.WaitOnline(t, p.room+"/"+botNick, 15*time.Second)
	p.alice.SayRoom(t, p.room, botNick+": "+text)
}

func (p *platform) SayAsTyped(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	if c.Direct {
		p.alice.WaitOnline(t, botJID, 15*time.Second)
		p.alice.Say(t, botJID, text)
		return
	}
	p.alice.WaitOnline(t, p.room+"/"+botNick, 15*time.Second)
	p.alice.SayRoom(t, p.room, text)
}

func (p *platform) Addressing() adaptertest.Addressing {
	return adaptertest.Addressing{Name: botNick, Mention: "@" + botNick}
}

func (p *platform) SayAsBot(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	p.alice.WaitOnline(t, botJID, 15*time.Second)
	if c.Direct {
		p.other.Say(t, botJID, text)
		return
	}
	p.other.SayRoom(t, p.room, botNick+": "+text)
}

func (p *platform) Posted(t *testing.T, d time.Duration) adaptertest.Post {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := p.alice.Next(t, time.Until(deadline))
		switch {
		case m.Type == "chat" && m.From.Bare().String() == botJID:
			return adaptertest.Post{Conversation: "dm", Text: m.Body}
		case m.Type == "groupchat" && m.From.String() == p.room+"/"+botNick:
			return adaptertest.Post{Conversation: p.room, Text: m.Body}
		}
	}
}

func (p *platform) MaxText() int { return 10000 }

func TestConformance(t *testing.T) {
	adaptertest.Run(t, &platform{srv: startProsody(t), room: prosodytest.Room("ops")})
}
