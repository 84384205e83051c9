package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"
)

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

	// The test is the gateway instance gw1 of the platform test: it reads
	// the answers and the announcements on its subscription.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync(chatopsv1.SubjectOut("test", "gw1"))
	if err != nil {
		t.Fatal(err)
	}
	say := func(text string) string {
		t.Helper()
		token := nuid.Next()
		ev := &chatopsv1.Event{Id: token, Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, From: &chatopsv1.Peer{Id: "U1", Name: "ada"},
			To: "C1", Data: []byte(text), Platform: "test", Gateway: "gw1", ReplyTo: chatopsv1.ReplySubject("test", "gw1", token)}
		data, _ := proto.Marshal(ev)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := durable.Publish(ctx, js, &nats.Msg{Subject: chatopsv1.SubjectIn("test"), Header: durable.Header("test", token), Data: data}); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			m, err := sub.NextMsg(time.Until(deadline))
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
	// announcements collects what gw1 would post unasked within d: what
	// the reply stream keeps on its outbound subjects (each router that
	// sees a change publishes it; the stream keeps it once, and gateways
	// read the stream).
	// (The routers make the stream with their first answer.)
	var outbound jetstream.Consumer
	announcements := func(d time.Duration) []string {
		t.Helper()
		if outbound == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			outbound, err = js.OrderedConsumer(ctx, durable.ReplyStream("test"), jetstream.OrderedConsumerConfig{
				FilterSubjects: []string{durable.OutboundSubject(chatopsv1.SubjectOutFinal("test", "gw1"))},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for deadline := time.Now().Add(d); time.Until(deadline) > 0; {
			batch, err := outbound.Fetch(16, jetstream.FetchMaxWait(max(time.Until(deadline), 100*time.Millisecond)))
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
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(say("list services"), "greeter (2 nodes)"); {
		if time.Now().After(deadline) {
			t.Fatal("the two greeters are not both registered after 60s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := say("watch greeter"); !strings.HasPrefix(got, "watching greeter (2 nodes now)") {
		t.Fatalf("watch greeter: %q", got)
	}

	for i, want := range []string{
		"watch: greeter now has 1 node (it had 2 nodes)",
		"watch: greeter lost its last node (it had 1 node): it is down",
	} {
		if err := greeters[i].stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
			t.Fatalf("%s exited cleanly after SIGKILL?", greeters[i].name)
		}
		killed := time.Now()
		var got []string
		for time.Since(killed) < 30*time.Second && len(got) == 0 {
			got = announcements(100 * time.Millisecond)
		}
		took := time.Since(killed)
		// Another router's copy would come within a look or two.
		got = append(got, announcements(5*time.Second)...)
		if len(got) != 1 || got[0] != want {
			t.Fatalf("after kill -9 of %s: announcements %q, want [%q] once", greeters[i].name, got, want)
		}
		t.Logf("%q announced once, %s after kill -9", want, took.Round(100*time.Millisecond))
	}
}
