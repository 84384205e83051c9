package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	xmppgw "github.com/botmesh/botmesh/gateway/adapter/xmpp"
	"github.com/botmesh/botmesh/gateway/adapter/xmpp/prosodytest"
	"github.com/botmesh/botmesh/internal/allinone"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/mesh"
)

const (
	xmppBotPassword   = "e2e-b0t-pw"
	xmppAlicePassword = "e2e-alice-pw"
	xmppNick          = "botmesh"
)

var xmppBot = prosodytest.JID("bot")

func xmppServer(t *testing.T) *prosodytest.Server {
	t.Helper()
	return prosodytest.Start(t, map[string]string{"bot": xmppBotPassword, "alice": xmppAlicePassword})
}

// xmppInput makes the XMPP input as the gateway binary does
// (gatewayInput), the password in a file.
func xmppInput(t *testing.T, srv *prosodytest.Server, args ...string) adapter.Input {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "xmpp-password")
	if err := os.WriteFile(pw, []byte(xmppBotPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	return gatewayInput(t, xmppgw.Name, append([]string{
		"--xmpp_jid=" + xmppBot, "--xmpp_password_file=" + pw, "--xmpp_server=" + srv.Addr,
		"--xmpp_ca_file=" + srv.CAFile, "--xmpp_nick=" + xmppNick,
	}, args...)...)
}

// xmppMesh runs the all-in-one (embedded NATS, router, echo, a gateway)
// with inputs, and returns the NATS URL once messages are answered.
func xmppMesh(t *testing.T, inputs ...adapter.Input) string {
	t.Helper()
	cfg := allinone.Config{
		Mesh: mesh.DefaultConfig(), NATSHost: "127.0.0.1", NATSPort: -1,
		Router:  router.Config{Timeout: 10 * time.Second},
		Gateway: gateway.Config{ReplyTimeout: 15 * time.Second},
	}
	return runAllInOne(t, cfg, nil, inputs...)
}

// A user on a real Prosody talks to the whole mesh: direct messages and a
// room, through the gateway, NATS, the router and the echo service; the
// server restarts and the bot answers again.
func TestXMPPThroughTheMesh(t *testing.T) {
	srv := xmppServer(t)
	room := prosodytest.Room("ops")
	xmppMesh(t, xmppInput(t, srv, "--xmpp_rooms="+room))

	alice := srv.Login(t, "alice", xmppAlicePassword)
	alice.Subscribe(t, xmppBot) // the bot accepts: alice sees it online
	alice.Join(t, room, "alice")
	alice.WaitOnline(t, xmppBot, 30*time.Second)

	for _, tc := range []struct{ say, want string }{
		{"echo hello from xmpp", "hello from xmpp"},
		{"ping", "pong"},
		{"ehco hi", `unknown command "ehco". Did you mean "echo"? Type help for the list of commands.`},
	} {
		alice.Say(t, xmppBot, tc.say)
		if m := alice.NextFrom(t, xmppBot, 20*time.Second); m.Body != tc.want || m.Type != "chat" {
			t.Errorf("dm %q: the bot said %s %q, want %q", tc.say, m.Type, m.Body, tc.want)
		}
	}

	bot := room + "/" + xmppNick
	alice.WaitOnline(t, bot, 15*time.Second)
	// Chatter in the room, the bot's nick starting a sentence included,
	// gets no answer (no "unknown command" to the room).
	for _, text := range []string{"echo not for the bot", xmppNick + " is acting up again", xmppNick + " ping", "ping", "!!!"} {
		alice.SayRoom(t, room, text)
	}
	for _, tc := range []struct{ say, want string }{
		{xmppNick + ": echo in the room", "in the room"},
		{xmppNick + ", echo comma", "comma"},
		{"@" + xmppNick + " ping", "pong"},
		{"!ping", "pong"},
	} {
		alice.SayRoom(t, room, tc.say)
		if m := alice.NextFrom(t, bot, 20*time.Second); m.Body != "alice: "+tc.want || m.Type != "groupchat" {
			t.Errorf("room %q: the bot said %s %q, want %q (chatter answered?)", tc.say, m.Type, m.Body, tc.want)
		}
	}
	alice.Say(t, xmppBot, "!ping")
	if m := alice.NextFrom(t, xmppBot, 20*time.Second); m.Body != "pong" {
		t.Errorf("dm !ping: the bot said %q", m.Body)
	}
	alice.Quiet(t, bot, 2*time.Second)

	// The server restarts: every stream closes, the room is gone. A
	// message sent before the bot is back waits in the server's offline
	// storage and is answered once it is.
	began := time.Now()
	srv.Restart(t)
	alice = srv.Login(t, "alice", xmppAlicePassword)
	alice.Say(t, xmppBot, "echo after the restart")
	if m := alice.NextFrom(t, xmppBot, 40*time.Second); m.Body != "after the restart" {
		t.Errorf("dm after the restart: %q", m.Body)
	}
	t.Logf("measured: answered %s after the restart began", time.Since(began).Round(time.Millisecond))
	alice.Join(t, room, "alice")
	alice.WaitOnline(t, bot, 15*time.Second)
	alice.SayRoom(t, room, "@"+xmppNick+" echo back in the room")
	if m := alice.NextFrom(t, bot, 20*time.Second); m.Body != "alice: back in the room" {
		t.Errorf("room after the restart: %q", m.Body)
	}
}
