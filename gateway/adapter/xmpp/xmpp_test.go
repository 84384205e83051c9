package xmppgw_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	xmppgw "github.com/botmesh/botmesh/gateway/adapter/xmpp"
	"github.com/botmesh/botmesh/gateway/adapter/xmpp/prosodytest"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/flagenv"
)

// echo runs in the way the gateway does (Start, Recv, Send) and answers
// every message with "re: " and its text. The events it took are on the
// returned channel.
func echo(t *testing.T, in adapter.Input) <-chan *chatopsv1.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := in.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start: %v", err)
	}
	conn, err := in.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan *chatopsv1.Event, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := conn.Recv(ctx)
			if err != nil {
				return
			}
			events <- ev
			rep := &chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: append([]byte("re: "), ev.Data...), To: ev.To, Meta: ev.Meta, Thread: ev.Thread, InReplyTo: ev.Id}
			if err := conn.Send(ctx, rep); err != nil && ctx.Err() == nil {
				t.Errorf("send: %v", err)
			}
		}
	}()
	t.Cleanup(func() {
		stopCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		if err := in.Stop(stopCtx); err != nil {
			t.Errorf("stop: %v", err)
		}
		cancel()
		<-done
	})
	return events
}

func TestRoomAnswersOnlyWhenAddressed(t *testing.T) {
	srv := startProsody(t)
	room := prosodytest.Room("ops")
	alice := srv.Login(t, "alice", alicePassword)
	alice.Join(t, room, "alice")
	events := echo(t, newInput(t, srv, "--xmpp_rooms="+room))
	alice.WaitOnline(t, room+"/"+botNick, 15*time.Second)

	for _, text := range []string{"ping", "hello botmesh", "botmeshy ping", "botmesh_ ping", "what does @botmesh do?", "botmesh ping", "botmesh is acting up again", "!!!"} {
		alice.SayRoom(t, room, text)
	}
	for _, tc := range []struct{ say, want string }{
		{"botmesh: ping 1", "ping 1"},
		{"BotMesh, ping 2", "ping 2"},
		{"@botmesh ping 3", "ping 3"},
		{"  !ping 4  ", "ping 4"},
	} {
		alice.SayRoom(t, room, tc.say)
		m := alice.NextFrom(t, room+"/"+botNick, 10*time.Second)
		if m.Body != "alice: re: "+tc.want {
			t.Errorf("%q: the bot said %q in the room, want %q (an unaddressed message answered?)", tc.say, m.Body, "alice: re: "+tc.want)
		}
	}
	ev := <-events
	if ev.GetTo() != room || ev.GetFrom().GetId() != prosodytest.JID("alice") || ev.GetFrom().GetName() != "alice" || ev.GetMeta()[xmppgw.MetaType] != "groupchat" {
		t.Errorf("room event: to %q from %+v meta %v", ev.GetTo(), ev.GetFrom(), ev.GetMeta())
	}
	alice.SayRoom(t, room, "botmesh:")
	alice.SayRoom(t, room, "not for the bot")
	alice.Quiet(t, room+"/"+botNick, time.Second)
}

func TestDirectMessages(t *testing.T) {
	srv := startProsody(t)
	alice := srv.Login(t, "alice", alicePassword)
	alice.Subscribe(t, botJID)
	events := echo(t, newInput(t, srv))
	alice.WaitOnline(t, botJID, 15*time.Second) // the bot accepted the subscription and is online

	alice.Say(t, botJID, "ping")
	if m := alice.NextFrom(t, botJID, 10*time.Second); m.Body != "re: ping" || m.Type != "chat" {
		t.Errorf("dm: got %s %q, want chat %q", m.Type, m.Body, "re: ping")
	}
	alice.Say(t, botJID, "botmesh: echo addressed")
	if m := alice.NextFrom(t, botJID, 10*time.Second); m.Body != "re: echo addressed" {
		t.Errorf("dm with the nick first: got %q", m.Body)
	}
	alice.SayThread(t, botJID, "thread-42", "in a thread")
	if m := alice.NextFrom(t, botJID, 10*time.Second); m.Body != "re: in a thread" || m.Thread != "thread-42" {
		t.Errorf("threaded dm: got %q in thread %q, want the reply in thread-42", m.Body, m.Thread)
	}
	first := <-events
	if first.GetTo() != prosodytest.JID("alice") || first.GetFrom().GetId() != prosodytest.JID("alice") || first.GetFrom().GetTeam() != prosodytest.Domain || first.GetId() == "" {
		t.Errorf("dm event: %+v", first)
	}

	// A second resource of the same user gets its own answer.
	alice2 := srv.Login(t, "alice", alicePassword)
	alice2.Say(t, botJID, "from the phone")
	if m := alice2.NextFrom(t, botJID, 10*time.Second); m.Body != "re: from the phone" {
		t.Errorf("second resource: got %q", m.Body)
	}
}

func TestRoomNickTaken(t *testing.T) {
	srv := startProsody(t)
	room := prosodytest.Room("ops")
	squatter := srv.Login(t, "bob", bobPassword)
	squatter.Join(t, room, botNick)
	alice := srv.Login(t, "alice", alicePassword)
	alice.Join(t, room, "alice")
	echo(t, newInput(t, srv, "--xmpp_rooms="+room))
	alice.WaitOnline(t, room+"/"+botNick+"_", 15*time.Second)
	alice.SayRoom(t, room, botNick+"_: ping")
	if m := alice.NextFrom(t, room+"/"+botNick+"_", 10*time.Second); m.Body != "alice: re: ping" {
		t.Errorf("addressed by its fallback nick: got %q", m.Body)
	}
}

func TestLongReplyIsCut(t *testing.T) {
	srv := startProsody(t)
	alice := srv.Login(t, "alice", alicePassword)
	alice.Subscribe(t, botJID)
	in := newInput(t, srv, "--xmpp_max_reply_bytes=1000")
	events := echo(t, in)
	alice.WaitOnline(t, botJID, 15*time.Second)
	long := strings.Repeat("0123456789", 300)
	alice.Say(t, botJID, long)
	m := alice.NextFrom(t, botJID, 10*time.Second)
	<-events
	full := "re: " + long
	kept, note, found := strings.Cut(m.Body, "\n… [cut: ")
	var n int
	if _, err := fmt.Sscanf(note, "%d bytes not shown]", &n); !found || err != nil || len(m.Body) > 1000 || !strings.HasPrefix(full, kept) || len(kept)+n != len(full) {
		t.Errorf("reply of %d bytes, limit 1000: got %d bytes (%d kept, note %q)", len(full), len(m.Body), len(kept), note)
	}
}

// The server restarts (all streams closed, rooms gone): the bot logs in
// again, rejoins its room and answers there and in direct messages.
func TestReconnectAfterServerRestart(t *testing.T) {
	srv := startProsody(t)
	room := prosodytest.Room("ops")
	alice := srv.Login(t, "alice", alicePassword)
	alice.Subscribe(t, botJID)
	echo(t, newInput(t, srv, "--xmpp_rooms="+room))
	alice.WaitOnline(t, botJID, 15*time.Second)
	alice.Say(t, botJID, "before")
	if m := alice.NextFrom(t, botJID, 10*time.Second); m.Body != "re: before" {
		t.Fatalf("before the restart: got %q", m.Body)
	}

	began := time.Now()
	srv.Restart(t)
	alice = srv.Login(t, "alice", alicePassword)
	alice.WaitOnline(t, botJID, 30*time.Second)
	t.Logf("measured: the bot was back online %s after the restart began", time.Since(began).Round(time.Millisecond))
	alice.Join(t, room, "alice")
	alice.WaitOnline(t, room+"/"+botNick, 15*time.Second)
	t.Logf("measured: the bot was back in its room %s after the restart began", time.Since(began).Round(time.Millisecond))
	alice.Say(t, botJID, "after")
	if m := alice.NextFrom(t, botJID, 10*time.Second); m.Body != "re: after" {
		t.Errorf("dm after the restart: got %q", m.Body)
	}
	alice.SayRoom(t, room, botNick+": after")
	if m := alice.NextFrom(t, room+"/"+botNick, 10*time.Second); m.Body != "alice: re: after" {
		t.Errorf("room after the restart: got %q", m.Body)
	}
}

// A server that stops answering (frozen: the TCP connection stays up) is
// noticed by the keep-alive ping; the bot reconnects once it answers again.
func TestKeepAliveNoticesHungServer(t *testing.T) {
	srv := startProsody(t)
	alice := srv.Login(t, "alice", alicePassword)
	alice.Subscribe(t, botJID)
	var logs meshtest.Buffer
	in := initInput(t, append(baseArgs(t, srv), "--xmpp_password="+botPassword, "--xmpp_keepalive=1s", "--xmpp_reconnect_max=2s"), adapter.Env{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	echo(t, in)
	alice.WaitOnline(t, botJID, 15*time.Second)

	srv.Pause(t)
	began := time.Now()
	for !strings.Contains(logs.String(), "keep-alive ping") {
		if time.Since(began) > 20*time.Second {
			t.Fatalf("the bot did not notice the hung server within 20s; its log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("measured: a hung server was noticed after %s (keep-alive 1s)", time.Since(began).Round(time.Millisecond))
	if err := in.Healthy(); err == nil {
		t.Error("Healthy reports nil while the server is hung")
	}
	srv.Resume(t)
	alice = srv.Login(t, "alice", alicePassword) // the old stream died with the pause
	alice.WaitOnline(t, botJID, 30*time.Second)
	alice.Say(t, botJID, "still there?")
	if m := alice.NextFrom(t, botJID, 10*time.Second); m.Body != "re: still there?" {
		t.Errorf("after the hang: got %q", m.Body)
	}
	if err := in.Healthy(); err != nil {
		t.Errorf("Healthy after reconnecting: %v", err)
	}
}

func baseArgs(t *testing.T, srv *prosodytest.Server) []string {
	return []string{"--xmpp_jid=" + botJID, "--xmpp_server=" + srv.Addr, "--xmpp_ca_file=" + srv.CAFile, "--xmpp_nick=" + botNick}
}

// Micro Bot command lines use --hipchat_username, --hipchat_password and
// --hipchat_server: they set the XMPP flags, and the bot logs in with them.
func TestHipChatFlags(t *testing.T) {
	srv := startProsody(t)
	alice := srv.Login(t, "alice", alicePassword)
	alice.Subscribe(t, botJID)
	in := initInput(t, []string{
		"--hipchat_username=" + botJID,
		"--hipchat_password=" + botPassword,
		"--hipchat_server=" + srv.Addr,
		"--xmpp_ca_file=" + srv.CAFile,
	}, adapter.Env{})
	echo(t, in)
	alice.WaitOnline(t, botJID, 15*time.Second)
	alice.Say(t, botJID, "ping")
	if m := alice.NextFrom(t, botJID, 10*time.Second); m.Body != "re: ping" {
		t.Errorf("with the HipChat flags: got %q", m.Body)
	}
}

// The gateway reads every flag from the environment too (sdk/flagenv):
// BOTMESH_XMPP_PASSWORD, or the Micro Bot's BOTMESH_HIPCHAT_PASSWORD, keeps
// the password off the command line.
func TestPasswordFromEnvironment(t *testing.T) {
	srv := startProsody(t)
	for _, name := range []string{"BOTMESH_XMPP_PASSWORD", "BOTMESH_HIPCHAT_PASSWORD"} {
		t.Run(name, func(t *testing.T) {
			alice := srv.Login(t, "alice", alicePassword)
			alice.Subscribe(t, botJID)
			in := xmppgw.New()
			fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
			in.Flags(fs)
			env := map[string]string{name: botPassword}
			if err := flagenv.Parse(fs, baseArgs(t, srv), func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
				t.Fatal(err)
			}
			if err := in.Init(adapter.Env{}); err != nil {
				t.Fatal(err)
			}
			echo(t, in)
			alice.WaitOnline(t, botJID, 15*time.Second)
			alice.Say(t, botJID, "ping")
			if m := alice.NextFrom(t, botJID, 10*time.Second); m.Body != "re: ping" {
				t.Errorf("got %q", m.Body)
			}
		})
	}
}

// The password reaches no log line and no error, whatever happens: a
// refused login, a login, a lost connection, a reconnect.
func TestPasswordNeverLogged(t *testing.T) {
	srv := startProsody(t)
	var logs meshtest.Buffer
	env := adapter.Env{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	wrong := initInput(t, append(baseArgs(t, srv), "--xmpp_password=Wr0ng-"+botPassword), env)
	err := wrong.Start(context.Background())
	if err == nil {
		t.Fatal("a wrong password logged in")
	}
	if strings.Contains(err.Error(), botPassword) {
		t.Errorf("the error shows the password: %v", err)
	}
	t.Logf("wrong password: %v", err)

	in := initInput(t, append(baseArgs(t, srv), "--xmpp_password="+botPassword, "--xmpp_reconnect_max=1s"), env)
	fmt.Fprintf(&logs, "config: %v %+v %#v\n", in, xmppgw.Config{Password: botPassword}, xmppgw.Config{Password: botPassword})
	alice := srv.Login(t, "alice", alicePassword)
	alice.Subscribe(t, botJID)
	echo(t, in)
	alice.WaitOnline(t, botJID, 15*time.Second)
	srv.Restart(t)
	alice = srv.Login(t, "alice", alicePassword)
	alice.WaitOnline(t, botJID, 30*time.Second)
	alice.Say(t, botJID, "ping")
	alice.NextFrom(t, botJID, 10*time.Second)

	out := logs.String()
	if !strings.Contains(out, "connected") || !strings.Contains(out, "reconnecting") {
		t.Fatalf("the log does not show the connection's life; the test saw nothing:\n%s", out)
	}
	for _, form := range []string{botPassword, base64.StdEncoding.EncodeToString([]byte(botPassword))} {
		if strings.Contains(out, form) {
			t.Errorf("the log shows the password (%q):\n%s", form, out)
		}
	}
}

// The server's certificate is verified: without --xmpp_ca_file a
// self-signed one is refused.
func TestUntrustedCertificateRefused(t *testing.T) {
	srv := startProsody(t)
	in := initInput(t, []string{"--xmpp_jid=" + botJID, "--xmpp_password=" + botPassword, "--xmpp_server=" + srv.Addr}, adapter.Env{})
	err := in.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Start: %v; want a certificate error", err)
	}
}

// The bot logs in with SCRAM only: a server that offers nothing else but
// PLAIN gets no password.
func TestNoPlainLogin(t *testing.T) {
	srv := prosodytest.Start(t, map[string]string{"bot": botPassword}, `disable_sasl_mechanisms = { "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "DIGEST-MD5" }`)
	err := newInput(t, srv).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no matching SASL mechanisms") {
		t.Errorf("Start against a PLAIN-only server: %v; want no matching SASL mechanism", err)
	}
	if strings.Contains(srv.Output(), "Authenticated as bot@localhost") {
		t.Error("the bot logged in with PLAIN")
	}
	// The control: the server does log a PLAIN client in, so the refusal
	// is the bot's.
	srv.LoginPlain(t, "bot", botPassword)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no jid", []string{"--xmpp_password=x"}, "--xmpp_jid (or --hipchat_username) is required"},
		{"bad jid", []string{"--xmpp_jid=@@", "--xmpp_password=x"}, `--xmpp_jid "@@" is not a user@domain address`},
		{"no password", []string{"--xmpp_jid=bot@example.com"}, "a password is required: set BOTMESH_XMPP_PASSWORD or --xmpp_password_file"},
		{"two passwords", []string{"--xmpp_jid=bot@example.com", "--xmpp_password=x", "--xmpp_password_file=/p"}, "give the password once"},
		{"room with nick", []string{"--xmpp_jid=bot@example.com", "--xmpp_password=x", "--xmpp_rooms=ops@conference.example.com/me"}, `"ops@conference.example.com/me" is not a bare room address`},
		{"missing password file", []string{"--xmpp_jid=bot@example.com", "--xmpp_password_file=/nonexistent/pw"}, "xmpp: read password file: open /nonexistent/pw: no such file or directory"},
		{"missing CA file", []string{"--xmpp_jid=bot@example.com", "--xmpp_password=x", "--xmpp_ca_file=/nonexistent/ca.pem"}, "xmpp: read CA file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := xmppgw.New()
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			in.Flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := in.Init(adapter.Env{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Init: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSecretDoesNotPrint(t *testing.T) {
	c := xmppgw.Config{Password: "hunter2"}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("cfg", "password", c.Password, "config", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.Password), logs.String()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("the password shows: %s", s)
		}
	}
	if string(c.Password) != "hunter2" {
		t.Error("the value itself was lost")
	}
}

func TestStopBeforeStart(t *testing.T) {
	in := xmppgw.New()
	if err := in.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn, _ := in.Stream(context.Background())
	if _, err := conn.Recv(context.Background()); !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("Recv after Stop: %v, want adapter.ErrClosed", err)
	}
}
