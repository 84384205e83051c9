package ircgw_test

import (
	"fmt"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/irc/ircdtest"
)

// inspircd disconnects a client whose unprocessed lines pass 8 KiB
// ("RecvQ exceeded"), and processes about one line per second once a
// client has used its burst. A reply of 40 long lines (17 KiB) sent at
// once gets a bot disconnected; paced as by default, every line arrives,
// in order, and the bot stays.
func TestPacingKeepsTheBotConnected(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 40 paced lines, about 40 s")
	}
	const n = 40
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("%02d %s", i, strings.Repeat("x", 400)))
	}
	reply := strings.Join(lines, "\n")
	srv := ircdtest.StartInspIRCd(t)
	alice := srv.Connect(t, "alice", false)
	alice.Join(t, channel)

	// The control: a reply unpaced is a flood. It is made far longer
	// (60 KiB) than the 8 KiB limit, so that how fast a loaded machine lets
	// inspircd read makes no difference.
	var flood []string
	for i := range 150 {
		flood = append(flood, fmt.Sprintf("%03d %s", i, strings.Repeat("x", 400)))
	}
	var floodLog meshtest.Buffer
	flooder := initInput(t, []string{"--irc_server=" + srv.Addr, "--irc_nick=flooder", "--irc_channels=" + channel, "--irc_send_burst=1000", "--irc_send_interval=0", "--irc_max_lines=1000"},
		adapter.Env{Log: slog.New(slog.NewTextHandler(&floodLog, nil))})
	serve(t, flooder, func(string) string { return strings.Join(flood, "\n") })
	alice.WaitMember(t, channel, "flooder", 15*time.Second)
	alice.Say(t, "flooder", "flood")
	// The server says why in an ERROR line ("RecvQ exceeded"), which the
	// bot logs unless the connection was reset before it could read it;
	// then the failed write is the reason.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(floodLog.String(), "RecvQ exceeded") && !strings.Contains(floodLog.String(), "disconnected; reconnecting\" err=\"irc: connection to") {
		if time.Now().After(deadline) {
			t.Fatalf("an unpaced 150-line reply did not get the bot disconnected; the test shows nothing. Its log:\n%s", floodLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for { // drop what the flooder managed to post
		if _, ok := alice.Receive(2 * time.Second); !ok {
			break
		}
	}

	var botLog meshtest.Buffer
	bot := initInput(t, []string{"--irc_server=" + srv.Addr, "--irc_nick=" + botNick, "--irc_channels=" + channel},
		adapter.Env{Log: slog.New(slog.NewTextHandler(io.MultiWriter(&botLog, t.Output()), nil))})
	serve(t, bot, func(string) string { return reply })
	alice.WaitMember(t, channel, botNick, 15*time.Second)
	alice.Say(t, botNick, "lines") // in private: pacing is the subject, not the channel
	began := time.Now()
	for i := range n {
		m := alice.NextFrom(t, botNick, 30*time.Second)
		if m.Text != lines[i] {
			t.Fatalf("line %d: got %q, want %q", i, m.Text, lines[i])
		}
	}
	t.Logf("measured: %d lines of %d bytes arrived in %s (default pacing: 5 at once, then 1 per second)", n, len(lines[0]), time.Since(began).Round(time.Millisecond))
	if out := botLog.String(); strings.Contains(out, "disconnected") {
		t.Errorf("the paced bot was disconnected:\n%s", out)
	}
	if err := bot.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}
