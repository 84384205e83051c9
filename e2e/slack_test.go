package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/fakeslack"
	slackgw "github.com/botmesh/botmesh/gateway/adapter/slack"
	"github.com/botmesh/botmesh/internal/allinone"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/nats-io/nats.go"
)

const (
	slackUser    = "UADA0001"
	slackGeneral = "CGENERAL1"
	slackDM      = "DADA0001"
)

// slackLog is a log the test can read: it also goes to the test output.
type slackLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *slackLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *slackLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func slackLogger(t *testing.T, l *slackLog) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), l), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// slackInput is the Slack input configured by flags, as the gateway binary
// does, against the fake Slack; Init'ed, not started.
func slackInput(t *testing.T, fs *fakeslack.Server, log *slog.Logger, args ...string) *slackgw.Input {
	t.Helper()
	in := slackgw.NewInput()
	flags := flag.NewFlagSet("gateway", flag.ContinueOnError)
	in.Flags(flags)
	if err := flags.Parse(append([]string{
		"--slack_app_token", fs.AppToken, "--slack_bot_token", fs.BotToken,
		"--slack_signing_secret", fs.SigningSecret, "--slack_api_url", fs.APIURL(),
		"--slack_listen", "127.0.0.1:0",
	}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := in.Init(adapter.Env{Log: log}); err != nil {
		t.Fatal(err)
	}
	return in
}

// slackMesh runs the all-in-one (embedded NATS with JetStream, router,
// echo and the other services, a gateway) with in as its input, and
// returns the NATS URL once messages are answered.
func slackMesh(t *testing.T, in adapter.Input, log *slog.Logger) string {
	t.Helper()
	cfg := allinone.Config{
		Mesh: mesh.DefaultConfig(), NATSHost: "127.0.0.1", NATSPort: -1,
		Router:  router.Config{Timeout: 5 * time.Second},
		Gateway: gateway.Config{ReplyTimeout: 10 * time.Second, Instance: "gw-a"},
	}
	return runAllInOne(t, cfg, log, in)
}

// slackReplica runs another gateway instance with in on the mesh at url,
// as a second replica of the Slack gateway would.
func slackReplica(t *testing.T, url, instance string, in adapter.Input, log *slog.Logger) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(nc, []adapter.Input{in}, gateway.Config{ReplyTimeout: 10 * time.Second, Instance: instance}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway %s: %v", instance, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("gateway %s did not stop within 30s", instance)
		}
		nc.Close()
	})
}

// slackListening waits until the http mode listens and returns its base
// URL.
func slackListening(t *testing.T, in *slackgw.Input) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for in.Addr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the Slack input does not listen after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "http://" + in.Addr().String()
}

// slackExpect waits for the bot's next post and checks it is text, posted
// with chat.postMessage in the thread of m (or, for a slash command, via
// its response_url).
func slackExpect(t *testing.T, fs *fakeslack.Server, m fakeslack.Said, text string) fakeslack.Message {
	t.Helper()
	p := fs.NextPost(t, 20*time.Second)
	if p.Method != "chat.postMessage" || p.Channel != m.Channel || p.ThreadTS != slackThread(m) || p.Visible() != text {
		t.Fatalf("bot posted %q with %s in %s thread %q; want %q in %s thread %q", p.Visible(), p.Method, p.Channel, p.ThreadTS, text, m.Channel, slackThread(m))
	}
	return p
}

// slackThread is the thread a reply to m goes to: m's thread, or the
// thread m starts.
func slackThread(m fakeslack.Said) string {
	if m.ThreadTS != "" {
		return m.ThreadTS
	}
	return m.TS
}

// slackSay delivers m over Socket Mode and checks Slack got its ack.
func slackSay(t *testing.T, fs *fakeslack.Server, env fakeslack.Envelope, conn int) {
	t.Helper()
	id := fs.SendOn(t, conn, env)
	fs.WaitAck(t, id, 3*time.Second)
}

// Fake Slack → Socket Mode → gateway → NATS → router → echo → reply in the
// thread, once; mentions, DMs, threads, the slash command, errors, help,
// and a redelivered event that gets no second reply.
func TestSlackMesh(t *testing.T) {
	fs := fakeslack.New(t)
	logs := &slackLog{}
	log := slackLogger(t, logs)
	in := slackInput(t, fs, log)
	slackMesh(t, in, log)
	fs.WaitAccepted(t, 1, 10*time.Second)

	m := fs.Mention(slackGeneral, slackUser, "echo hi there", "")
	slackSay(t, fs, m.Envelope(), -1)
	slackExpect(t, fs, m, "hi there")

	// Slack redelivers the event (it thought the ack was lost): no second
	// reply. The next post is the answer to the next message.
	again := m.Envelope()
	again.RetryAttempt, again.RetryReason = 1, "timeout"
	slackSay(t, fs, again, -1)

	dm := fs.DM(slackDM, slackUser, "ping", "")
	slackSay(t, fs, dm.Envelope(), -1)
	slackExpect(t, fs, dm, "pong")

	inThread := fs.Mention(slackGeneral, slackUser, "echo in the thread", m.TS)
	slackSay(t, fs, inThread.Envelope(), -1)
	slackExpect(t, fs, inThread, "in the thread")

	unknown := fs.Mention(slackGeneral, slackUser, "ehco hi", "")
	slackSay(t, fs, unknown.Envelope(), -1)
	p := fs.NextPost(t, 20*time.Second)
	if !p.IsError() || p.ThreadTS != unknown.TS || !strings.HasPrefix(p.Visible(), `unknown command "ehco". Did you mean "echo"?`) {
		t.Errorf("unknown command: error %v in thread %q: %q", p.IsError(), p.ThreadTS, p.Visible())
	}

	help := fs.DM(slackDM, slackUser, "help", "")
	slackSay(t, fs, help.Envelope(), -1)
	p = fs.NextPost(t, 20*time.Second)
	if p.ThreadTS != help.TS || !strings.HasPrefix(p.Text, "```\n") || !strings.Contains(p.Visible(), "echo [text] - Returns the [text]") {
		t.Errorf("help: want the command list in a code block in the thread, got %q in thread %q", p.Visible(), p.ThreadTS)
	}

	cmd := fs.Slash(slackGeneral, slackUser, "/bot", "echo from a slash <command>")
	slackSay(t, fs, fakeslack.SlashEnvelope(cmd), -1)
	p = fs.NextPost(t, 20*time.Second)
	if p.Method != "response_url" || p.ResponseType != "in_channel" || p.Channel != slackGeneral || p.Visible() != "from a slash <command>" {
		t.Errorf("slash command: %s %s in %s: %q", p.Method, p.ResponseType, p.Channel, p.Visible())
	}

	fs.NoPost(t, 500*time.Millisecond)
	if !strings.Contains(logs.String(), "duplicate event dropped") {
		t.Error("the gateway did not report dropping the redelivered event")
	}
}

// Two gateway replicas (two inputs on two gateway instances, one NATS):
// Slack gives each event to one of the two sockets, each reply reaches the
// replica that took the message and is posted once in the right thread; an
// event redelivered to the other replica, or to both at once, is answered
// once.
func TestSlackMeshTwoReplicas(t *testing.T) {
	fs := fakeslack.New(t)
	logs := &slackLog{}
	log := slackLogger(t, logs)
	a := slackInput(t, fs, log.With("replica", "a"))
	url := slackMesh(t, a, log.With("replica", "a"))
	fs.WaitAccepted(t, 1, 10*time.Second)
	b := slackInput(t, fs, log.With("replica", "b"))
	slackReplica(t, url, "gw-b", b, log.With("replica", "b"))
	fs.WaitAccepted(t, 2, 10*time.Second)
	if fs.Connections() != 2 {
		t.Fatalf("%d sockets, want one per replica", fs.Connections())
	}

	// One message at a time, alternating sockets: each reply in its own
	// thread, in order, once.
	for i := range 6 {
		m := fs.Mention(slackGeneral, slackUser, "echo message "+string(rune('a'+i)), "")
		slackSay(t, fs, m.Envelope(), i%2)
		slackExpect(t, fs, m, "message "+string(rune('a'+i)))
	}

	// Many at once over both sockets: every thread gets exactly its reply.
	sent := map[string]string{} // thread → text
	for i := range 20 {
		text := fmt.Sprintf("burst %02d", i)
		m := fs.Mention(slackGeneral, slackUser, "echo "+text, "")
		sent[m.TS] = text
		fs.SendOn(t, i%2, m.Envelope())
	}
	for range 20 {
		p := fs.NextPost(t, 20*time.Second)
		want, ok := sent[p.ThreadTS]
		if !ok || p.Visible() != want {
			t.Fatalf("post %q in thread %q; want one of the burst's replies, once", p.Visible(), p.ThreadTS)
		}
		delete(sent, p.ThreadTS)
	}

	// Redelivered to the other replica.
	m := fs.Mention(slackGeneral, slackUser, "echo only once", "")
	slackSay(t, fs, m.Envelope(), 0)
	slackExpect(t, fs, m, "only once")
	retry := m.Envelope()
	retry.RetryAttempt = 1
	slackSay(t, fs, retry, 1)

	// Delivered to both replicas at the same time.
	both := fs.DM(slackDM, slackUser, "echo raced", "")
	fs.SendOn(t, 0, both.Envelope())
	retry = both.Envelope()
	retry.RetryAttempt = 1
	fs.SendOn(t, 1, retry)
	slackExpect(t, fs, both, "raced")

	next := fs.DM(slackDM, slackUser, "ping", "")
	slackSay(t, fs, next.Envelope(), 1)
	slackExpect(t, fs, next, "pong")
	fs.NoPost(t, 500*time.Millisecond)

	out := logs.String()
	if n := strings.Count(out, "duplicate event dropped"); n != 2 {
		t.Errorf("%d duplicates dropped, want 2", n)
	}
	for _, bad := range []string{"late reply", "no reply within"} {
		if strings.Contains(out, bad) {
			t.Errorf("a reply went astray: the log says %q", bad)
		}
	}
	for _, r := range []string{"replica=a", "replica=b"} {
		took := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, r) && strings.Contains(l, `msg="message received"`) {
				took++
			}
		}
		t.Logf("%s took %d messages", r, took)
		if took == 0 {
			t.Errorf("%s took no message", r)
		}
	}
}

// The Events API over HTTP through the whole mesh: a signed delivery is
// answered in its thread; Slack's retry of it is not answered again; a
// forged one is refused and answered nowhere.
func TestSlackMeshEventsAPI(t *testing.T) {
	fs := fakeslack.New(t)
	logs := &slackLog{}
	log := slackLogger(t, logs)
	in := slackInput(t, fs, log, "--slack_mode", "http")
	slackMesh(t, in, log)
	base := slackListening(t, in)
	url := base + slackgw.EventsPath

	m := fs.Mention(slackGeneral, slackUser, "echo over http", "")
	if code, body := fs.Deliver(t, url, "application/json", m.Callback, nil); code != http.StatusOK {
		t.Fatalf("delivery: %d %q", code, body)
	}
	slackExpect(t, fs, m, "over http")
	if code, _ := fs.Deliver(t, url, "application/json", m.Callback, http.Header{"X-Slack-Retry-Num": {"1"}, "X-Slack-Retry-Reason": {"http_timeout"}}); code != http.StatusOK {
		t.Fatalf("retry: %d", code)
	}
	forged := fs.Mention(slackGeneral, slackUser, "echo forged", "")
	if code, _ := fakeslack.Post(t, url, "application/json", forged.Callback, fakeslack.Sign("guessed-secret", time.Now(), forged.Callback)); code != http.StatusUnauthorized {
		t.Errorf("forged delivery: %d, want 401", code)
	}
	cmd := fs.Slash(slackGeneral, slackUser, "/bot", "ping")
	if code, _ := fs.Deliver(t, base+slackgw.CommandsPath, "application/x-www-form-urlencoded", fakeslack.SlashForm(cmd), nil); code != http.StatusOK {
		t.Fatalf("slash command: %d", code)
	}
	if p := fs.NextPost(t, 20*time.Second); p.Method != "response_url" || p.Visible() != "pong" {
		t.Errorf("slash command reply: %s %q", p.Method, p.Visible())
	}
	fs.NoPost(t, 500*time.Millisecond)
	if !strings.Contains(logs.String(), "duplicate event dropped") {
		t.Error("the gateway did not report dropping Slack's retry")
	}
}
