package e2e

import (
	"context"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"
)

// testGateway is the gateway instance gw1 of the platform test, played by
// the test: it reads the answers and the announcements on its
// subscription.
type testGateway struct {
	t        *testing.T
	nc       *nats.Conn
	js       jetstream.JetStream
	sub      *nats.Subscription
	outbound jetstream.Consumer
}

func newTestGateway(t *testing.T, url string) *testGateway {
	t.Helper()
	js := meshtest.JetStream(t, url)
	nc := js.Conn()
	sub, err := nc.SubscribeSync(chatopsv1.SubjectOut("test", "gw1"))
	if err != nil {
		t.Fatal(err)
	}
	return &testGateway{t: t, nc: nc, js: js, sub: sub}
}

// say sends text as user U1 in C1 and returns the answer.
func (g *testGateway) say(text string) string {
	t := g.t
	t.Helper()
	token := nuid.Next()
	ev := &chatopsv1.Event{Id: token, Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, From: &chatopsv1.Peer{Id: "U1", Name: "ada"},
		To: "C1", Data: []byte(text), Platform: "test", Gateway: "gw1", ReplyTo: chatopsv1.ReplySubject("test", "gw1", token)}
	data, _ := proto.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := durable.Publish(ctx, g.js, &nats.Msg{Subject: chatopsv1.SubjectIn("test"), Header: durable.Header("test", token), Data: data}); err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		m, err := g.sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("no answer to %q: %v", text, err)
		}
		rep := &chatopsv1.Event{}
		if err := proto.Unmarshal(m.Data, rep); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(m.Subject, "."+token) {
			return string(rep.GetData())
		}
	}
}

// announcements collects what gw1 would post unasked within d: what the
// reply stream keeps on its outbound subjects (each router that sees a
// change publishes it; the stream keeps it once, and gateways read the
// stream). (The routers make the stream with their first answer.)
func (g *testGateway) announcements(d time.Duration) []string {
	t := g.t
	t.Helper()
	if g.outbound == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		g.outbound, err = g.js.OrderedConsumer(ctx, durable.ReplyStream("test"), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{durable.OutboundSubject(chatopsv1.SubjectOutFinal("test", "gw1"))},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for deadline := time.Now().Add(d); time.Until(deadline) > 0; {
		batch, err := g.outbound.Fetch(16, jetstream.FetchMaxWait(max(time.Until(deadline), 100*time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			rep := &chatopsv1.Event{}
			if err := proto.Unmarshal(m.Data(), rep); err != nil {
				t.Fatal(err)
			}
			got = append(got, string(rep.GetData()))
		}
	}
	return got
}

// expectOnce waits up to within for an announcement, checks that it is
// the one want matches and that no copy follows, and returns how long it
// took.
func (g *testGateway) expectOnce(want *regexp.Regexp, within time.Duration) time.Duration {
	t := g.t
	t.Helper()
	from := time.Now()
	var got []string
	for time.Since(from) < within && len(got) == 0 {
		got = g.announcements(100 * time.Millisecond)
	}
	took := time.Since(from)
	// Another router's copy would come within a look or two.
	got = append(got, g.announcements(5*time.Second)...)
	if len(got) != 1 || !want.MatchString(got[0]) {
		t.Fatalf("announcements %q, want one that matches %s, once", got, want)
	}
	t.Logf("%q announced once, %s after the change", got[0], took.Round(100*time.Millisecond))
	return took
}

// A watched service whose nodes are killed with -9 (no deregistration):
// with three router processes, the conversation is told once that it lost
// a node, and once that it lost its last one, each within seconds (the
// NATS registry stops listing a node as soon as its process is gone; its
// registry TTL is not waited for).
func TestIntegrationWatchKilledService(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nats-server, routers and a service as processes")
	}
	url := startNATS(t)
	startRouters(t, faultRouterArgs(url, "--schedule_platforms", "test"), "router-1", "router-2", "router-3")
	start(t, "registry-cmd", "registry-cmd", nil, "--nats_url", url, "--log_level", "info") // list services
	greeters := []*proc{
		start(t, "greeter-1", "greeter", nil, "--nats_url", url, "--log_level", "info"),
		start(t, "greeter-2", "greeter", nil, "--nats_url", url, "--log_level", "info"),
	}

	gw := newTestGateway(t, url)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(gw.say("list services"), "greeter (2 nodes)"); {
		if time.Now().After(deadline) {
			t.Fatal("the two greeters are not both registered after 60s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := gw.say("watch greeter"); !strings.HasPrefix(got, "watching greeter (2 nodes now)") {
		t.Fatalf("watch greeter: %q", got)
	}

	for i, want := range []string{
		"watch: greeter now has 1 node (it had 2 nodes)",
		"watch: greeter lost its last node (it had 1 node): it is down",
	} {
		if err := greeters[i].stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
			t.Fatalf("%s exited cleanly after SIGKILL?", greeters[i].name)
		}
		gw.expectOnce(regexp.MustCompile("^"+regexp.QuoteMeta(want)+"$"), 30*time.Second)
	}
}

// A service whose health a conversation watches, killed with -9, with
// three router processes: its health failing twice in a row (it has no
// node) is told once, and so is its recovery when it is started again.
func TestIntegrationWatchHealthKilledService(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nats-server, routers and a service as processes")
	}
	url := startNATS(t)
	startRouters(t, faultRouterArgs(url, "--schedule_platforms", "test", "--watch_health_every", "1s"), "router-1", "router-2", "router-3")
	start(t, "registry-cmd", "registry-cmd", nil, "--nats_url", url, "--log_level", "info") // list services
	greeter := start(t, "greeter-1", "greeter", nil, "--nats_url", url, "--log_level", "info")
	gw := newTestGateway(t, url)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(gw.say("list services"), "greeter (1 node)"); {
		if time.Now().After(deadline) {
			t.Fatal("the greeter is not registered after 60s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := gw.say("watch greeter health 2"); got != "watching the health of greeter (healthy now; checked every 1s): this conversation is told when it fails 2 times in a row and when it recovers. To stop: unwatch greeter health" {
		t.Fatalf("watch greeter health 2: %q", got)
	}
	if got := gw.announcements(3 * time.Second); len(got) != 0 {
		t.Fatalf("a healthy greeter was announced: %q", got)
	}
	if err := greeter.stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatalf("%s exited cleanly after SIGKILL?", greeter.name)
	}
	// Two checks a second apart take a second at least.
	if took := gw.expectOnce(regexp.MustCompile(`^watch: greeter: health failed 2 times in a row: it has no node$`), 30*time.Second); took < time.Second {
		t.Errorf("announced %s after kill -9: before the second failed check", took)
	}
	start(t, "greeter-2", "greeter", nil, "--nats_url", url, "--log_level", "info")
	gw.expectOnce(regexp.MustCompile(`^watch: greeter: healthy again, after [0-9]+ failed checks in a row$`), 60*time.Second)
	if got := gw.say("watching"); got != "this conversation watches: the health of greeter (healthy; told after 2 failed checks in a row)" {
		t.Errorf("watching: %q", got)
	}
}
