package ircgw_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	ircgw "github.com/botmesh/botmesh/gateway/adapter/irc"
	"github.com/botmesh/botmesh/gateway/adapter/irc/ircdtest"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// serve runs in the way the gateway does (Start, Recv, Send) and answers
// every message with answer(text). The events it took are on the returned
// channel.
func serve(t *testing.T, in adapter.Input, answer func(string) string) <-chan *chatopsv1.Event {
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
			rep := &chatopsv1.Event{Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte(answer(string(ev.Data))), To: ev.To, Meta: ev.Meta, InReplyTo: ev.Id}
			if err := conn.Send(ctx, rep); err != nil && ctx.Err() == nil {
				t.Errorf("send: %v", err)
			}
		}
	}()
	t.Cleanup(func() {
		stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		if err := in.Stop(stopCtx); err != nil {
			t.Errorf("stop: %v", err)
		}
		cancel()
		<-done
	})
	return events
}

func echo(text string) string { return "re: " + text }

func TestAddressing(t *testing.T) {
	srv := ircdtest.Start(t)
	alice := srv.Connect(t, "alice", false)
	alice.Join(t, channel)
	events := serve(t, newInput(t, srv), echo)
	alice.WaitMember(t, channel, botNick, 15*time.Second)

	for _, text := range []string{"ping", "botmesh ping", "botmesh is acting up again", "hello botmesh: ping", "botmeshy: ping", "\x01ACTION waves\x01", "!", "!!!"} {
		alice.Say(t, channel, text)
	}
	for _, tc := range []struct{ say, want string }{
		{"botmesh: ping 1", "ping 1"},
		{"BotMesh, ping 2", "ping 2"},
		{"!ping 3", "ping 3"},
		{"@botmesh ping 4", "ping 4"},
		{"botmesh: \x02bold\x02 \x0304red\x03", "bold red"},
	} {
		alice.Say(t, channel, tc.say)
		m := alice.NextFrom(t, botNick, 15*time.Second)
		if m.Target != channel || m.Text != "alice: re: "+tc.want {
			t.Errorf("%q: the bot said %q to %s, want %q in %s (an unaddressed message answered?)", tc.say, m.Text, m.Target, "alice: re: "+tc.want, channel)
		}
	}
	ev := <-events
	if ev.GetTo() != channel || ev.GetFrom().GetId() != "nick:alice" || ev.GetFrom().GetTeam() == "" || ev.GetMeta()[ircgw.MetaTarget] != channel {
		t.Errorf("channel event: to %q from %+v meta %v", ev.GetTo(), ev.GetFrom(), ev.GetMeta())
	}
	for _, tc := range []struct{ say, want string }{
		{"ping", "ping"},
		{"botmesh: ping", "ping"},
		{"!ping", "ping"},
		{"botmesh is slow", "botmesh is slow"}, // in private every message is for the bot
	} {
		alice.Say(t, botNick, tc.say)
		m := alice.NextFrom(t, botNick, 15*time.Second)
		if m.Target != "alice" || m.Text != "re: "+tc.want {
			t.Errorf("private %q: got %q to %s, want %q to alice", tc.say, m.Text, m.Target, "re: "+tc.want)
		}
	}
	alice.Say(t, channel, "not for the bot")
	alice.Quiet(t, botNick, time.Second)
}

// Long and multi-line replies arrive whole, in lines the server relays
// unchanged, in order; beyond --irc_max_lines they are cut with a note.
// (Asked in private: in a channel the bot names the asker first, see
// TestChannelReplies.)
func TestLongReplies(t *testing.T) {
	srv := ircdtest.Start(t)
	alice := srv.Connect(t, "alice", false)
	alice.Join(t, channel)
	long := strings.Repeat("0123456789 abcdefghij ", 60) + "é€😀 end" // 1338 bytes, multi-byte characters at a cut
	replies := map[string]string{
		"long":      long,
		"lines":     "first\n\nthird  \r\nfourth\n\n",
		"too many":  strings.Repeat("line\n", 12),
		"unicode":   strings.Repeat("é", 600),
		"nul":       "a\x00b",
		"empty":     "",
		"colon":     ":)",
		"leading":   " indented",
		"tabs only": "\t",
	}
	serve(t, newInput(t, srv, "--irc_max_lines=5"), func(text string) string { return replies[text] })
	alice.WaitMember(t, channel, botNick, 15*time.Second)

	read := func(n int) []string {
		t.Helper()
		var got []string
		for range n {
			m := alice.NextFrom(t, botNick, 20*time.Second)
			if len(":botmesh!~botmesh@127.0.0.1 PRIVMSG "+m.Target+" :"+m.Text+"\r\n") > 512 {
				t.Errorf("line of %d bytes: %q", len(m.Text), m.Text)
			}
			got = append(got, m.Text)
		}
		return got
	}
	// readAll reads lines until, joined by sep, they are as long as want.
	readAll := func(want, sep string) []string {
		t.Helper()
		var got []string
		for len(strings.Join(got, sep)) < len(want) {
			got = append(got, read(1)...)
		}
		return got
	}
	alice.Say(t, botNick, "long")
	// A long line with spaces wraps between words: the pieces joined by
	// spaces give it back.
	if got := readAll(long, " "); strings.Join(got, " ") != long || len(got) < 3 {
		t.Errorf("long line: got %d pieces joining to %q, want %q", len(got), strings.Join(got, " "), long)
	}
	alice.Say(t, botNick, "lines")
	if got := read(3); strings.Join(got, "|") != "first|third|fourth" {
		t.Errorf("multi-line: got %q", got)
	}
	alice.Say(t, botNick, "too many")
	if got := read(5); strings.Join(got[:4], "|") != "line|line|line|line" || got[4] != "… [cut: 8 more lines not shown]" {
		t.Errorf("12 lines, --irc_max_lines=5: got %q", got)
	}
	alice.Say(t, botNick, "unicode")
	if got := readAll(replies["unicode"], ""); strings.Join(got, "") != replies["unicode"] || len(got) < 3 {
		t.Errorf("1200 bytes of é: got %q", got)
	}
	for _, tc := range []struct{ ask, want string }{{"nul", "ab"}, {"empty", "(empty reply)"}, {"colon", ":)"}, {"leading", " indented"}, {"tabs only", "(empty reply)"}} {
		alice.Say(t, botNick, tc.ask)
		if got := read(1); got[0] != tc.want {
			t.Errorf("%s: got %q, want %q", tc.ask, got[0], tc.want)
		}
	}
}

// When its nick is taken the bot registers as nick_0, answers to that,
// and takes its own nick back once it is free.
func TestNickTaken(t *testing.T) {
	srv := ircdtest.Start(t)
	squatter := srv.Connect(t, botNick, false)
	alice := srv.Connect(t, "alice", false)
	alice.Join(t, channel)
	serve(t, newInput(t, srv, "--irc_keepalive=5s", "--irc_timeout=5s"), echo)
	alice.WaitMember(t, channel, botNick+"_0", 15*time.Second)
	alice.Say(t, channel, botNick+"_0: ping")
	if m := alice.NextFrom(t, botNick+"_0", 15*time.Second); m.Text != "alice: re: ping" {
		t.Errorf("as %s_0: got %q", botNick, m.Text)
	}
	began := time.Now()
	squatter.Quit()
	alice.WaitMember(t, channel, botNick, 15*time.Second)
	t.Logf("measured: the bot took its nick back %s after it was freed (keep-alive 5s)", time.Since(began).Round(time.Millisecond))
	alice.Say(t, channel, botNick+": ping")
	if m := alice.NextFrom(t, botNick, 15*time.Second); m.Text != "alice: re: ping" {
		t.Errorf("as %s again: got %q", botNick, m.Text)
	}
}

// The server restarts: the bot reconnects, rejoins its channel, and
// answers there and in private.
func TestReconnectAfterServerRestart(t *testing.T) {
	srv := ircdtest.Start(t)
	alice := srv.Connect(t, "alice", false)
	alice.Join(t, channel)
	in := newInput(t, srv)
	serve(t, in, echo)
	alice.WaitMember(t, channel, botNick, 15*time.Second)
	alice.Say(t, channel, botNick+": before")
	if m := alice.NextFrom(t, botNick, 15*time.Second); m.Text != "alice: re: before" {
		t.Fatalf("before the restart: got %q", m.Text)
	}
	began := time.Now()
	srv.Restart(t)
	alice = srv.Connect(t, "alice", false)
	alice.Join(t, channel)
	alice.WaitMember(t, channel, botNick, 30*time.Second)
	t.Logf("measured: the bot was back in %s %s after the restart began", channel, time.Since(began).Round(time.Millisecond))
	alice.Say(t, channel, botNick+": after")
	if m := alice.NextFrom(t, botNick, 15*time.Second); m.Text != "alice: re: after" || m.Target != channel {
		t.Errorf("channel after the restart: got %q to %s", m.Text, m.Target)
	}
	alice.Say(t, botNick, "private after")
	if m := alice.NextFrom(t, botNick, 15*time.Second); m.Text != "re: private after" {
		t.Errorf("private after the restart: got %q", m.Text)
	}
	if err := in.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}

// A server that stops answering (frozen: the TCP connection stays up) is
// noticed by the keep-alive ping; the bot reconnects once it answers.
func TestKeepAliveNoticesHungServer(t *testing.T) {
	srv := ircdtest.Start(t)
	var logs meshtest.Buffer
	in := initInput(t, []string{"--irc_server=" + srv.Addr, "--irc_nick=" + botNick, "--irc_channels=" + channel, "--irc_keepalive=5s", "--irc_timeout=5s", "--irc_reconnect_max=2s"},
		adapter.Env{Log: slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	serve(t, in, echo)
	srv.Pause(t)
	began := time.Now()
	for !strings.Contains(logs.String(), "keep-alive ping") {
		if time.Since(began) > 20*time.Second {
			t.Fatalf("the bot did not notice the hung server within 20s; its log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("measured: a hung server was noticed after %s (keep-alive and timeout 5s)", time.Since(began).Round(time.Millisecond))
	if err := in.Healthy(); err == nil {
		t.Error("Healthy reports nil while the server is hung")
	}
	srv.Resume(t)
	// The server may still hold the bot's old connection for a moment, so
	// the bot can come back as botmesh_0 until it takes its nick back; a
	// user asks until it answers, under either nick.
	alice := srv.Connect(t, "alice", false)
	alice.Join(t, channel)
	resumed := time.Now()
	for {
		alice.Say(t, channel, botNick+": still there?")
		if m, ok := alice.Receive(3 * time.Second); ok {
			if !strings.HasPrefix(m.From, botNick) || m.Text != "alice: re: still there?" {
				t.Errorf("after the hang: %s said %q", m.From, m.Text)
			}
			t.Logf("measured: answered again %s after the server resumed, as %s", time.Since(resumed).Round(time.Millisecond), m.From)
			break
		}
		if time.Since(resumed) > 40*time.Second {
			t.Fatal("no answer within 40s after the server resumed")
		}
	}
}

func TestTLS(t *testing.T) {
	srv := ircdtest.Start(t)
	alice := srv.Connect(t, "alice", true)
	alice.Join(t, channel)
	serve(t, newInput(t, srv, "--irc_server="+srv.TLSAddr, "--irc_tls", "--irc_ca_file="+srv.CAFile), echo)
	alice.WaitMember(t, channel, botNick, 15*time.Second)
	alice.Say(t, channel, botNick+": over tls")
	if m := alice.NextFrom(t, botNick, 15*time.Second); m.Text != "alice: re: over tls" {
		t.Errorf("over TLS: got %q", m.Text)
	}

	untrusted := initInput(t, []string{"--irc_server=" + srv.TLSAddr, "--irc_tls", "--irc_nick=other"}, adapter.Env{})
	err := untrusted.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a self-signed certificate without --irc_ca_file: %v; want a certificate error", err)
	}
}

// SASL asked for but not offered by the server (ngircd has no SASL) is a
// clear error, and the password shows nowhere.
func TestSASLRefusedWithoutLeakingPassword(t *testing.T) {
	const password = "s3cret-SASL-pw"
	srv := ircdtest.Start(t)
	var logs meshtest.Buffer
	t.Setenv("IRC_TEST_UNUSED", "") // keep the environment untouched otherwise
	in := initInput(t, []string{"--irc_server=" + srv.Addr, "--irc_sasl_user=bot", "--irc_sasl_password=" + password, "--irc_timeout=3s", "--irc_keepalive=3s"},
		adapter.Env{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	fmt.Fprintf(&logs, "config: %v %+v %#v\n", in, ircgw.Config{SASLPassword: password}, ircgw.Config{SASLPassword: password})
	err := in.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "SASL") {
		t.Fatalf("Start: %v; want a SASL error", err)
	}
	t.Logf("SASL refused: %v", err)
	if strings.Contains(err.Error(), password) || strings.Contains(logs.String(), password) {
		t.Errorf("the password shows:\nerror: %v\nlog:\n%s", err, logs.String())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no server", nil, "--irc_server is required"},
		{"bad server", []string{"--irc_server=irc.example.com"}, `--irc_server "irc.example.com" is not host:port`},
		{"bad nick", []string{"--irc_server=h:6667", "--irc_nick=bot mesh"}, `--irc_nick "bot mesh" is not a valid nick`},
		{"bad channel", []string{"--irc_server=h:6667", "--irc_channels=ops"}, `"ops" is not a channel name`},
		{"sasl without password", []string{"--irc_server=h:6667", "--irc_sasl_user=bot"}, "--irc_sasl_user needs a password"},
		{"two passwords", []string{"--irc_server=h:6667", "--irc_sasl_user=bot", "--irc_sasl_password=x", "--irc_sasl_password_file=/p"}, "give the SASL password once"},
		{"timeout above keepalive", []string{"--irc_server=h:6667", "--irc_timeout=2m"}, "--irc_timeout 2m0s must be at least 1s and at most --irc_keepalive 1m0s"},
		{"one line", []string{"--irc_server=h:6667", "--irc_max_lines=1"}, "--irc_max_lines 1 is below 2"},
		{"missing password file", []string{"--irc_server=h:6667", "--irc_sasl_user=bot", "--irc_sasl_password_file=/nonexistent/pw"}, "irc: read SASL password file: open /nonexistent/pw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := ircgw.New()
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

func TestStopBeforeStart(t *testing.T) {
	in := ircgw.New()
	if err := in.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn, _ := in.Stream(context.Background())
	if _, err := conn.Recv(context.Background()); !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("Recv after Stop: %v, want adapter.ErrClosed", err)
	}
}

// In a channel the bot names the asker; an answer of more than
// --irc_channel_lines (4) lines goes to the asker in a private message,
// and one line in the channel says so; in private nothing changes.
func TestChannelReplies(t *testing.T) {
	srv := ircdtest.Start(t)
	alice := srv.Connect(t, "alice", false)
	alice.Join(t, channel)
	numbered := func(n int) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "line %d of %d\n", i, n)
		}
		return b.String()
	}
	serve(t, newInput(t, srv), func(text string) string {
		n, err := strconv.Atoi(strings.TrimPrefix(text, "lines "))
		if err != nil {
			return "re: " + text
		}
		return numbered(n)
	})
	alice.WaitMember(t, channel, botNick, 15*time.Second)

	read := func(n int) []ircdtest.Msg {
		t.Helper()
		var got []ircdtest.Msg
		for range n {
			got = append(got, alice.NextFrom(t, botNick, 20*time.Second))
		}
		return got
	}
	alice.Say(t, channel, "!ping")
	if m := read(1)[0]; m.Text != "alice: re: ping" || m.Target != channel {
		t.Errorf("short answer: %q to %s, want %q in %s", m.Text, m.Target, "alice: re: ping", channel)
	}
	alice.Say(t, channel, "!lines 4")
	for i, m := range read(4) {
		want := fmt.Sprintf("line %d of 4", i+1)
		if i == 0 {
			want = "alice: " + want
		}
		if m.Text != want || m.Target != channel {
			t.Errorf("4-line answer, line %d: %q to %s, want %q in %s", i+1, m.Text, m.Target, want, channel)
		}
	}
	alice.Say(t, channel, "!lines 14")
	got := read(15)
	if got[0].Text != "alice: sent you the 14 lines in a private message" || got[0].Target != channel {
		t.Errorf("14-line answer: first %q to %s, want the note in %s", got[0].Text, got[0].Target, channel)
	}
	for i, m := range got[1:] {
		if want := fmt.Sprintf("line %d of 14", i+1); m.Text != want || m.Target != "alice" {
			t.Errorf("14-line answer, line %d: %q to %s, want %q to alice", i+1, m.Text, m.Target, want)
		}
	}
	alice.Say(t, botNick, "lines 6")
	for i, m := range read(6) {
		if want := fmt.Sprintf("line %d of 6", i+1); m.Text != want || m.Target != "alice" {
			t.Errorf("6 lines in private, line %d: %q to %s, want %q to alice", i+1, m.Text, m.Target, want)
		}
	}
	alice.Quiet(t, botNick, time.Second)
}

// A message too long for one IRC line, split by the user's client into
// full lines sent back to back, is one command: its pieces are joined (in
// private, and in a channel where only the first piece addresses the
// bot), not answered one by one. Short lines stay commands of their own.
func TestSplitMessageIsOneCommand(t *testing.T) {
	srv := ircdtest.Start(t)
	alice := srv.Connect(t, "alice", false)
	alice.Join(t, channel)
	events := serve(t, newInput(t, srv), func(text string) string { return fmt.Sprintf("got %d bytes", len(text)) })
	alice.WaitMember(t, channel, botNick, 15*time.Second)
	// 442 bytes: relayed with alice's prefix, 480 bytes or more, as a
	// client's pieces are.
	piece := func(i int) string { return fmt.Sprintf("piece%d %s", i, strings.Repeat("word ", 87)) }
	next := func() string {
		t.Helper()
		select {
		case ev := <-events:
			return string(ev.GetData())
		case <-time.After(20 * time.Second):
			t.Fatal("no event within 20s")
			return ""
		}
	}
	pieces := []string{"echo " + piece(1), piece(2), piece(3), "the end"}
	for _, p := range pieces {
		alice.Say(t, botNick, p)
	}
	want := strings.Join([]string{strings.TrimSpace(pieces[0]), strings.TrimSpace(pieces[1]), strings.TrimSpace(pieces[2]), "the end"}, " ")
	if got := next(); got != want {
		t.Errorf("a paste of 4 lines in private became %.60q… (%d bytes), want the 4 joined (%d bytes)", got, len(got), len(want))
	}
	alice.Say(t, botNick, "ping")
	alice.Say(t, botNick, "echo two")
	if a, b := next(), next(); a != "ping" || b != "echo two" {
		t.Errorf("two short lines: events %q, %q", a, b)
	}

	alice.Say(t, channel, botNick+": echo "+piece(1))
	alice.Say(t, channel, piece(2))
	alice.Say(t, channel, "last")
	if got, want := next(), "echo "+strings.TrimSpace(piece(1))+" "+strings.TrimSpace(piece(2))+" last"; got != want {
		t.Errorf("a paste of 3 lines in the channel became %.60q… (%d bytes), want the 3 joined (%d bytes)", got, len(got), len(want))
	}
	select {
	case ev := <-events:
		t.Errorf("a piece became an event of its own: %.60q", ev.GetData())
	case <-time.After(4 * time.Second): // longer than the window for pieces (3s)
	}
}
