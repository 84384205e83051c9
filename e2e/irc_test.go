package e2e

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	ircgw "github.com/botmesh/botmesh/gateway/adapter/irc"
	"github.com/botmesh/botmesh/gateway/adapter/irc/ircdtest"
	"github.com/botmesh/botmesh/gateway/adapter/xmpp/prosodytest"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go"
)

const (
	ircNick    = "botmesh"
	ircChannel = "#ops"
)

// ircInput makes the IRC input as the gateway binary does (gatewayInput).
func ircInput(t *testing.T, srv *ircdtest.Server, args ...string) adapter.Input {
	t.Helper()
	return gatewayInput(t, ircgw.Name, append([]string{"--irc_server=" + srv.Addr, "--irc_nick=" + ircNick, "--irc_channels=" + ircChannel}, args...)...)
}

// gatewayInput makes the input called name as the gateway binary does:
// every input's flags and the shared ones (--prefix) parsed from args,
// then Select, which initialises it.
func gatewayInput(t *testing.T, name string, args ...string) adapter.Input {
	t.Helper()
	set := gateway.Inputs().Instantiate()
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	set.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	ins, err := set.Select(name, adapter.Env{Log: meshtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return ins[0]
}

// ircLines serves "lines N": N numbered lines.
type ircLines struct{}

func (ircLines) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	rsp.Usage, rsp.Description = "lines N", "Returns N numbered lines"
	return nil
}

func (ircLines) Exec(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	n := 1
	if len(req.Args) > 1 {
		n, _ = strconv.Atoi(req.Args[1])
	}
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %02d of %d: the quick brown fox jumps over the lazy dog\n", i, n)
	}
	rsp.Result = []byte(b.String())
	return nil
}

// ircAsk says text (in channel, or privately when target is the bot) until
// the bot's answer arrives: right after the bot joins, the router may not
// know a new command yet. It returns the first line of the answer.
func ircAsk(t *testing.T, c *ircdtest.Client, target, text string, ok func(string) bool) ircdtest.Msg {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.Say(t, target, text)
		m := c.NextFrom(t, ircNick, 20*time.Second)
		if ok(m.Text) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q: the bot said %q", text, m.Text)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// A user on a real ngircd talks to the whole mesh in a channel and in
// private; a 50-line result arrives whole and in order; the server
// restarts and the bot answers again.
func TestIRCThroughTheMesh(t *testing.T) {
	srv := ircdtest.Start(t)
	url := xmppMesh(t, ircInput(t, srv))
	m := meshtest.Mesh(t, nil, func(c *mesh.Config) { c.NATSURL = url })
	svc, err := command.New(m, "lines", ircLines{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })

	alice := srv.Connect(t, "alice", false)
	alice.Join(t, ircChannel)
	alice.WaitMember(t, ircChannel, ircNick, 30*time.Second)

	ask := func(target, text, want string) {
		t.Helper()
		alice.Say(t, target, text)
		got := alice.NextFrom(t, ircNick, 20*time.Second)
		wantTarget := ircChannel
		if target == ircNick {
			wantTarget = "alice"
		} else {
			want = "alice: " + want // in a channel the bot names the asker
		}
		if got.Text != want || got.Target != wantTarget {
			t.Errorf("%q to %s: the bot said %q to %s, want %q to %s", text, target, got.Text, got.Target, want, wantTarget)
		}
	}
	ask(ircChannel, ircNick+": echo hello from irc", "hello from irc")
	ask(ircChannel, "!ping", "pong")
	ask(ircChannel, "@"+ircNick+" ping", "pong")
	ask(ircChannel, ircNick+", echo comma", "comma")
	ask(ircNick, "echo in private", "in private")
	ask(ircNick, "!ping", "pong")
	// Chatter in the channel, the bot's nick starting a sentence
	// included, gets no answer (no "unknown command" to the channel).
	for _, text := range []string{"echo not for the bot", ircNick + " is acting up again", ircNick + " ping", "!!!"} {
		alice.Say(t, ircChannel, text)
	}
	alice.Quiet(t, ircNick, 2*time.Second)

	// A long answer asked in the channel goes to the asker in private,
	// whole and in order, with one line in the channel saying so.
	if !testing.Short() {
		note := ircAsk(t, alice, ircChannel, "!lines 50", func(s string) bool { return strings.HasPrefix(s, "alice: sent you the") })
		if note.Text != "alice: sent you the 50 lines in a private message" || note.Target != ircChannel {
			t.Errorf("50-line answer: the channel got %q in %s", note.Text, note.Target)
		}
		began := note.At
		for i := 1; i <= 50; i++ {
			got := alice.NextFrom(t, ircNick, 20*time.Second)
			if want := fmt.Sprintf("line %02d of 50: the quick brown fox jumps over the lazy dog", i); got.Text != want || got.Target != "alice" {
				t.Fatalf("line %d of the 50-line result: got %q to %s, want %q to alice", i, got.Text, got.Target, want)
			}
			if i == 50 {
				t.Logf("measured: 50 lines arrived over %s (5 at once, then 1 per second)", got.At.Sub(began).Round(time.Millisecond))
			}
		}
	}

	began := time.Now()
	srv.Restart(t)
	alice = srv.Connect(t, "alice", false)
	alice.Join(t, ircChannel)
	alice.WaitMember(t, ircChannel, ircNick, 40*time.Second)
	t.Logf("measured: the bot was back in %s %s after the restart began", ircChannel, time.Since(began).Round(time.Millisecond))
	ask(ircChannel, ircNick+", echo after the restart", "after the restart")
	ask(ircNick, "ping", "pong")
}

// One gateway process runs several inputs (--inputs=xmpp,irc): users on
// both platforms are answered.
func TestIRCAndXMPPInOneGateway(t *testing.T) {
	irc := ircdtest.Start(t)
	xmpp := xmppServer(t)
	xmppMesh(t, ircInput(t, irc), xmppInput(t, xmpp))
	ircAndXMPPAnswer(t, irc, xmpp)
}

// One gateway process per platform: the XMPP input in the all-in-one's
// gateway, the IRC input in a gateway of its own on the same NATS.
func TestIRCAndXMPPOneGatewayEach(t *testing.T) {
	irc := ircdtest.Start(t)
	xmpp := xmppServer(t)
	url := xmppMesh(t, xmppInput(t, xmpp))
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(nc, []adapter.Input{ircInput(t, irc)}, gateway.Config{Instance: "gw-irc", ReplyTimeout: 15 * time.Second}, meshtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("irc gateway: %v", err)
		}
		nc.Close()
	})
	ircAndXMPPAnswer(t, irc, xmpp)
}

func ircAndXMPPAnswer(t *testing.T, irc *ircdtest.Server, xmpp *prosodytest.Server) {
	t.Helper()
	alice := xmpp.Login(t, "alice", xmppAlicePassword)
	alice.Subscribe(t, xmppBot)
	bob := irc.Connect(t, "bob", false)
	bob.Join(t, ircChannel)
	alice.WaitOnline(t, xmppBot, 30*time.Second)
	bob.WaitMember(t, ircChannel, ircNick, 30*time.Second)

	alice.Say(t, xmppBot, "echo via xmpp")
	bob.Say(t, ircChannel, ircNick+": echo via irc")
	if m := alice.NextFrom(t, xmppBot, 20*time.Second); m.Body != "via xmpp" {
		t.Errorf("xmpp: the bot said %q", m.Body)
	}
	if m := bob.NextFrom(t, ircNick, 20*time.Second); m.Text != "bob: via irc" || m.Target != ircChannel {
		t.Errorf("irc: the bot said %q to %s", m.Text, m.Target)
	}
}
