package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/fakeslack"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/ircdtest"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go/jetstream"
)

// Fault 3 of the matrix: a Slack gateway replica is killed (SIGKILL) while
// the replies to the messages it took are still being worked on. Its
// sibling, another gateway process of the same platform, notices that it is
// gone (--adopt_after) and posts them: every command runs once and is
// answered once, in its own thread.
func TestIntegrationFaultSlackGatewayKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	t.Parallel()
	const (
		n    = 500
		work = 15 * time.Second // every command: longer than the burst
	)
	url := startNATS(t)
	svc := serveFaultCommand(t, url, "work", func(string) time.Duration { return work })
	startRouters(t, faultRouterArgs(url), "router-1", "router-2")

	fs := fakeslack.New(t)
	gw := func(instance string) *proc {
		return start(t, instance, "gateway", nil, "--nats_url", url, "--inputs", "slack", "--instance", instance,
			"--log_level", "info", "--adopt_after", "10s",
			"--slack_app_token", fs.AppToken, "--slack_bot_token", fs.BotToken, "--slack_api_url", fs.APIURL())
	}
	connected := func(want int) {
		deadline := time.Now().Add(30 * time.Second)
		for fs.Connections() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d Slack sockets after 30s, want %d", fs.Connections(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Socket 0 is gw-a's, socket 1 gw-b's.
	a := gw("gw-a")
	connected(1)
	b := gw("gw-b")
	connected(2)
	// Both gateways have their reply consumers before the burst.
	js := waitReplyConsumers(t, url, "slack", "gw-a", "gw-b")

	// The burst: n mentions, each on its own thread, alternately to the
	// two sockets.
	said := map[string]fakeslack.Said{} // thread → message
	sentAt := map[string]time.Time{}
	ids := map[string]string{} // thread → command id
	for i := range n {
		id := fmt.Sprint(i)
		m := fs.Mention(slackGeneral, slackUser, "work "+id, "")
		said[m.TS], ids[m.TS], sentAt[m.TS] = m, id, time.Now()
		slackSay(t, fs, m.Envelope(), i%2)
		time.Sleep(burstRate)
	}
	// Every message is in the stream; none is answered yet (each runs for
	// 15 s). gw-a dies with its replies in flight.
	waitFor(t, 20*time.Second, fmt.Sprintf("%d messages stored", n), func() bool {
		s, err := js.Stream(context.Background(), durable.Stream)
		return err == nil && s.CachedInfo().State.LastSeq >= n
	})
	if svc.runsSoFar() == 0 {
		t.Fatal("no command started before the kill")
	}
	if err := a.stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatal("gw-a exited cleanly after SIGKILL")
	}
	killed := time.Now()
	t.Logf("gw-a killed %s after the first message; the service has started %d commands", killed.Sub(sentAt[firstTS(sentAt)]).Round(100*time.Millisecond), svc.runsSoFar())

	// Every reply posted, once, in its thread.
	deadline := time.Now().Add(work + 60*time.Second)
	for len(fs.Posts()) < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a second post would show here
	posts := fs.Posts()
	got := map[string][]string{}
	var longest time.Duration
	stray := 0
	for _, p := range posts {
		if _, ok := said[p.ThreadTS]; !ok || p.Channel != slackGeneral {
			stray++
			t.Errorf("post %q in %s thread %q: not a reply to a burst message", p.Visible(), p.Channel, p.ThreadTS)
			continue
		}
		got[p.ThreadTS] = append(got[p.ThreadTS], p.Visible())
	}
	right, errs, dups, lost, ranTwice := 0, 0, 0, 0, 0
	for ts, id := range ids {
		texts := got[ts]
		switch {
		case len(texts) == 0:
			lost++
		case len(texts) > 1:
			dups++
		case texts[0] == "done "+id:
			right++
		default:
			errs++
			t.Errorf("work %s answered %q", id, texts[0])
		}
		if svc.ran(id) > 1 {
			ranTwice++
		}
	}
	// The longest wait: the last post, from its message's sending.
	for _, p := range posts {
		if at, ok := sentAt[p.ThreadTS]; ok {
			longest = max(longest, p.PostedAt.Sub(at))
		}
	}
	t.Logf("faults: slack-gateway-killed sent=%d right=%d errors=%d duplicates=%d lost=%d ran_twice=%d stray=%d longest_wait=%s",
		n, right, errs, dups, lost, ranTwice, stray, longest.Round(100*time.Millisecond))
	adopted := strings.Count(b.stderr.String(), "posting the reply of a gateway that is gone")
	t.Logf("gw-b posted %d replies of gw-a's messages", adopted)
	if right != n || dups > 0 || lost > 0 || ranTwice > 0 {
		t.Errorf("want all %d answered right, once, and run once", n)
	}
	if adopted == 0 {
		t.Error("gw-b posted none of gw-a's replies: the kill did not leave any in flight")
	}
}

// waitReplyConsumers waits until the reply stream of platform has the
// consumers of the gateway instances, and returns a JetStream client of
// the mesh at url.
func waitReplyConsumers(t *testing.T, url, platform string, instances ...string) jetstream.JetStream {
	t.Helper()
	js := meshtest.JetStream(t, url)
	waitFor(t, 30*time.Second, "the gateways' reply consumers", func() bool {
		s, err := js.Stream(context.Background(), durable.ReplyStream(platform))
		if err != nil {
			return false
		}
		for _, instance := range instances {
			if _, err := s.Consumer(context.Background(), durable.GatewayConsumer(instance)); err != nil {
				return false
			}
		}
		return true
	})
	return js
}

// firstTS returns the key of the earliest time in m.
func firstTS(m map[string]time.Time) string {
	var first string
	for k, v := range m {
		if first == "" || v.Before(m[first]) {
			first = k
		}
	}
	return first
}

// waitFor polls cond every 100 ms until it holds, failing t after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The same on IRC: the replica addressed in the channel (nick botmesh) is
// killed while its commands run; the other replica (nick botmesh2, in the
// same channel) posts their answers there, each once. (IRC's flood limits
// keep this to a few commands: a user who sends hundreds of lines is
// disconnected by the server.)
func TestIntegrationFaultIRCGatewayKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	t.Parallel()
	const (
		n    = 8
		work = 8 * time.Second
	)
	srv := ircdtest.Start(t)
	url := startNATS(t)
	svc := serveFaultCommand(t, url, "work", func(string) time.Duration { return work })
	startRouters(t, faultRouterArgs(url), "router-1", "router-2")
	gw := func(instance, nick string) *proc {
		return start(t, instance, "gateway", nil, "--nats_url", url, "--inputs", "irc", "--instance", instance,
			"--log_level", "info", "--adopt_after", "5s",
			"--irc_server", srv.Addr, "--irc_nick", nick, "--irc_channels", ircChannel, "--irc_prefix", "")
	}
	a := gw("irc-a", ircNick)
	b := gw("irc-b", ircNick+"2")
	alice := srv.Connect(t, "alice", false)
	alice.Join(t, ircChannel)
	alice.WaitMember(t, ircChannel, ircNick, 30*time.Second)
	alice.WaitMember(t, ircChannel, ircNick+"2", 30*time.Second)
	waitReplyConsumers(t, url, "irc", "irc-a", "irc-b")

	for i := range n {
		alice.Say(t, ircChannel, fmt.Sprintf("%s: work %d", ircNick, i))
		time.Sleep(300 * time.Millisecond)
	}
	waitFor(t, 20*time.Second, "every command started", func() bool { return svc.runsSoFar() >= n })
	if err := a.stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatal("irc-a exited cleanly after SIGKILL")
	}
	killed := time.Now()
	got := map[string]int{}
	for range n {
		m := alice.NextFrom(t, ircNick+"2", work+60*time.Second)
		if m.Target != ircChannel {
			t.Errorf("%q posted to %s, want %s", m.Text, m.Target, ircChannel)
		}
		got[m.Text]++
	}
	alice.Quiet(t, ircNick+"2", 3*time.Second)
	right := 0
	for i := range n {
		if got[fmt.Sprintf("alice: done %d", i)] == 1 { // in a channel the bot names the asker
			right++
		}
		if runs := svc.ran(fmt.Sprint(i)); runs != 1 {
			t.Errorf("work %d ran %d times", i, runs)
		}
	}
	t.Logf("faults: irc-gateway-killed sent=%d right=%d posted_by_sibling=%d last_post=%s after the kill", n, right,
		strings.Count(b.stderr.String(), "posting the reply of a gateway that is gone"), time.Since(killed).Round(100*time.Millisecond))
	if right != n {
		t.Errorf("answers %v, want done 0..%d once each", got, n-1)
	}
}
