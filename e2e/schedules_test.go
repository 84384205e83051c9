package e2e

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/fakeslack"
	"github.com/botmesh/botmesh/gateway/adapter/web"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"
)

// Schedules outlive every part: set through three router processes that
// are then killed (SIGKILL) at once and replaced, on a nats-server that is
// killed and started again on the same store, "in 3s" (due while the
// routers are being replaced) and "in 15s" (due after the NATS restart)
// each run once and their results are stored for the conversation's
// gateway, and "every 2s" runs 3 to 6 times in 9 s on three routers (not
// once per router) until it is removed.
func TestIntegrationScheduleSurvivesRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nats-server and routers as processes")
	}
	node := newNATSNode(t, "n1")
	node.start(t)
	svc := serveFaultCommand(t, node.url(), "sched", func(string) time.Duration { return 0 })
	args := faultRouterArgs(node.url(), "--schedule_platforms", "test")
	routers := startRouters(t, args, "router-1", "router-2", "router-3")

	// The test is the gateway instance gw1 of the platform test.
	nc, err := nats.Connect(node.url(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	replies, err := nc.SubscribeSync(chatopsv1.SubjectOut("test", "gw1"))
	if err != nil {
		t.Fatal(err)
	}
	say := func(text string) string {
		t.Helper()
		token := nuid.Next()
		ev := &chatopsv1.Event{Id: token, Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, From: &chatopsv1.Peer{Id: "U1", Name: "ada"},
			To: "C1", Data: []byte(text), Platform: "test", Gateway: "gw1", ReplyTo: chatopsv1.ReplySubject("test", "gw1", token)}
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := durable.Publish(ctx, js, &nats.Msg{Subject: chatopsv1.SubjectIn("test"), Header: durable.Header("test", token), Data: data}); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, err := replies.NextMsg(time.Until(deadline))
			if err != nil {
				t.Fatalf("no answer to %q: %v", text, err)
			}
			if strings.HasSuffix(m.Subject, "."+token) {
				rep := &chatopsv1.Event{}
				if err := proto.Unmarshal(m.Data, rep); err != nil {
					t.Fatal(err)
				}
				return string(rep.GetData())
			}
		}
	}
	scheduled := regexp.MustCompile(`^scheduled ([a-z2-7]{8}): `)
	set := func(text string) string {
		t.Helper()
		out := say(text)
		m := scheduled.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%q: %q", text, out)
		}
		return m[1]
	}
	soon := set("in 3s sched soon")
	once := set("in 15s sched once")
	tick := set("every 2s sched tick")
	setAt := time.Now()

	// Kill every router, start three others, then restart NATS, before
	// the second one-time schedule is due.
	for _, r := range routers {
		if err := r.stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
			t.Fatalf("%s exited cleanly after SIGKILL?", r.name)
		}
	}
	t.Logf("every router killed %s after the schedules were set", time.Since(setAt).Round(time.Millisecond))
	startRouters(t, args, "router-4", "router-5", "router-6")
	t.Logf("three new routers ready %s after the schedules were set", time.Since(setAt).Round(time.Millisecond))
	node.kill(t)
	node.start(t)
	t.Logf("NATS restarted %s after the schedules were set", time.Since(setAt).Round(time.Millisecond))
	if d := time.Since(setAt); d >= 15*time.Second {
		t.Fatalf("the restarts took %s: in 15s was due before NATS restarted", d)
	}

	// The one-time schedule ran once, and its result waits in the reply
	// stream, on the outbound path (gw1, the gateway that took the message
	// that set it, runs no consumer here).
	deadline := time.Now().Add(60 * time.Second)
	for svc.ran("once") == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := svc.ran("once"); n != 1 {
		t.Fatalf("in 15s ran %d times within %s, want once", n, time.Since(setAt).Round(time.Second))
	}
	t.Logf("in 15s ran %s after it was set", time.Since(setAt).Round(100*time.Millisecond))
	if n := svc.ran("soon"); n != 1 {
		t.Errorf("in 3s ran %d times, want once", n)
	}
	stored := func(id string) []string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, durable.ReplyStream("test"))
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(durable.OutboundSubject(chatopsv1.SubjectOutFinal("test", "gw1"))))
		if err != nil {
			t.Fatal(err)
		}
		var data []string
		for subject := range info.State.Subjects {
			if !strings.HasPrefix(subject, chatopsv1.ReplySubject("test", "gw1", "s"+id+"-")) {
				continue
			}
			m, err := s.GetLastMsgForSubject(ctx, subject)
			if err != nil {
				t.Fatal(err)
			}
			rep := &chatopsv1.Event{}
			if err := proto.Unmarshal(m.Data, rep); err != nil {
				t.Fatal(err)
			}
			data = append(data, string(rep.GetData()))
		}
		return data
	}
	var results []string
	for deadline := time.Now().Add(20 * time.Second); len(results) == 0 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		results = stored(once)
	}
	if want := "schedule " + once + " (in 15s: `sched once`):\ndone once"; len(results) != 1 || results[0] != want {
		t.Errorf("results stored for gw1: %q, want [%q]", results, want)
	}
	if results, want := stored(soon), "schedule "+soon+" (in 3s: `sched soon`):\ndone soon"; len(results) != 1 || results[0] != want {
		t.Errorf("results of in 3s stored for gw1: %q, want [%q]", results, want)
	}

	// The repeating one runs on the three new routers, about every 2 s.
	before := svc.ran("tick")
	time.Sleep(9 * time.Second)
	n := svc.ran("tick") - before
	t.Logf("every 2s ran %d times in 9s on three routers", n)
	if n < 3 || n > 6 {
		t.Errorf("every 2s ran %d times in 9s on three routers, want 3 to 6", n)
	}
	if out := say("unschedule " + tick); !strings.HasPrefix(out, "removed schedule "+tick) {
		t.Fatalf("unschedule: %q", out)
	}
	time.Sleep(3 * time.Second) // a run that fired just before may finish
	after := svc.ran("tick")
	time.Sleep(6 * time.Second)
	if n := svc.ran("tick") - after; n != 0 {
		t.Errorf("every 2s ran %d times after it was removed", n)
	}
	if n := svc.ran("once"); n != 1 {
		t.Errorf("in 15s ran %d times in all", n)
	}
	if n := svc.ran("soon"); n != 1 {
		t.Errorf("in 3s ran %d times in all", n)
	}
}

// A web chat session gets a scheduled result when its tab comes back: the
// tab sets "in 2s ping", goes away (its websocket closed) before the
// schedule fires, and, back with its session, finds the result after the
// answer that set it.
func TestWebScheduleResultWaitsForTheTab(t *testing.T) {
	in := webInput(t, "--web_address", "127.0.0.1:0")
	webAllInOne(t, in)
	url := strings.TrimSuffix(webURL(t, in), "/")
	type frame struct {
		Type, Session, Conversation, Epoch, Kind, Text string
		InReplyTo                                      string `json:"in_reply_to"`
		Seq                                            uint64
	}
	dial := func(hello map[string]any) (*websocket.Conn, frame) {
		t.Helper()
		d := websocket.Dialer{Subprotocols: []string{web.Subprotocol}, HandshakeTimeout: 10 * time.Second}
		ws, _, err := d.Dial("ws"+strings.TrimPrefix(url, "http")+web.WebsocketPath, http.Header{"Origin": {url}})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { ws.Close() })
		hello["type"] = web.TypeHello
		if err := ws.WriteJSON(hello); err != nil {
			t.Fatal(err)
		}
		var w frame
		if err := ws.ReadJSON(&w); err != nil || w.Type != web.TypeWelcome {
			t.Fatalf("welcome: %+v %v", w, err)
		}
		return ws, w
	}
	next := func(ws *websocket.Conn, within time.Duration) frame {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(within))
		var f frame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("no frame within %s: %v", within, err)
		}
		return f
	}
	ws, w := dial(map[string]any{})
	if err := ws.WriteJSON(map[string]any{"type": web.TypeMessage, "id": "m1", "text": "in 2s ping"}); err != nil {
		t.Fatal(err)
	}
	var set frame
	for set.Type != web.TypeReply || set.Kind == web.KindProgress {
		set = next(ws, 30*time.Second)
	}
	id := regexp.MustCompile(`^scheduled ([a-z2-7]{8}): `).FindStringSubmatch(set.Text)
	if id == nil {
		t.Fatalf("in 2s ping: %q", set.Text)
	}
	ws.Close()
	awayAt := time.Now()
	// Away for longer than the schedule needs to fire and run.
	time.Sleep(5 * time.Second)
	back, w2 := dial(map[string]any{"session": w.Session, "conversation": w.Conversation, "epoch": w.Epoch, "seen": set.Seq})
	if w2.Epoch != w.Epoch {
		t.Fatalf("the conversation was made anew (epoch %s → %s)", w.Epoch, w2.Epoch)
	}
	want := "schedule " + id[1] + " (in 2s: `ping`):\npong"
	for {
		f := next(back, 30*time.Second)
		if f.Type != web.TypeReply || f.Kind == web.KindProgress {
			continue
		}
		if f.Text != want || f.Seq != set.Seq+1 {
			t.Fatalf("back after %s, the tab got %d %q, want %d %q", time.Since(awayAt).Round(time.Millisecond), f.Seq, f.Text, set.Seq+1, want)
		}
		break
	}
	_ = back.SetReadDeadline(time.Now().Add(3 * time.Second))
	var extra frame
	if err := back.ReadJSON(&extra); err == nil && extra.Type == web.TypeReply {
		t.Errorf("then %q as well", extra.Text)
	}
}

// A Slack conversation gets its scheduled result after the gateway replica
// that took the message that set it is killed (-9) and replaced by one
// under another name: any gateway of the platform posts it, once, in the
// thread where it was set.
func TestIntegrationSlackScheduleAfterReplicaReplaced(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	url := startNATS(t)
	startRouters(t, faultRouterArgs(url), "router-1", "router-2")
	fs := fakeslack.New(t)
	gw := func(instance string) *proc {
		return start(t, instance, "gateway", nil, "--nats_url", url, "--inputs", "slack", "--instance", instance,
			"--log_level", "info", "--slack_app_token", fs.AppToken, "--slack_bot_token", fs.BotToken, "--slack_api_url", fs.APIURL())
	}
	a := gw("gw-a")
	waitFor(t, 30*time.Second, "gw-a's Slack socket", func() bool { return fs.Connections() >= 1 })
	m := fs.Mention(slackGeneral, slackUser, "in 4s ping", "")
	slackSay(t, fs, m.Envelope(), 0)
	var id string
	waitFor(t, 30*time.Second, "the answer to in 4s ping", func() bool {
		for _, p := range fs.Posts() {
			if s := regexp.MustCompile(`scheduled ([a-z2-7]{8}): `).FindStringSubmatch(p.Visible()); s != nil && p.ThreadTS == m.TS {
				id = s[1]
				return true
			}
		}
		return false
	})
	setAt := time.Now()
	if err := a.stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatal("gw-a exited cleanly after SIGKILL")
	}
	gw("gw-b")
	// (A reply of several lines is posted as a code block.)
	want := "```\nschedule " + id + " (in 4s: `ping`):\npong\n```"
	results := func() (n int) {
		for _, p := range fs.Posts() {
			if p.Visible() == want {
				n++
				if p.Channel != slackGeneral || p.ThreadTS != m.TS {
					t.Errorf("the result was posted in %s thread %q, want %s thread %q", p.Channel, p.ThreadTS, slackGeneral, m.TS)
				}
			}
		}
		return n
	}
	defer func() {
		if t.Failed() {
			for _, p := range fs.Posts() {
				t.Logf("posted in %s thread %q: %q", p.Channel, p.ThreadTS, p.Visible())
			}
		}
	}()
	waitFor(t, 60*time.Second, "the scheduled result posted by gw-b", func() bool { return results() > 0 })
	t.Logf("the result was posted by the new replica %s after the schedule was set", time.Since(setAt).Round(100*time.Millisecond))
	time.Sleep(3 * time.Second) // a second post would show here
	if n := results(); n != 1 {
		t.Errorf("the result was posted %d times, want once", n)
	}
}
