package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/internal/allinone"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/sdk/stream"
	"github.com/nats-io/nats.go"
)

// A stream processor beside the whole mesh: the messages a user says go to
// the router (which answers them) and, through the events stream, to the
// processor, which posts a line about each deploy said in #dev to #ops;
// the gateway posts those lines. Every deploy of a burst of 200 shows in
// #ops once; nothing else does.
func TestStreamProcessorInMesh(t *testing.T) {
	in := adaptertest.NewShared("team")
	url := runAllInOne(t, allinone.Config{Router: router.Config{Timeout: 5 * time.Second}, Gateway: gateway.Config{ReplyTimeout: 10 * time.Second}}, nil, in)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p, err := stream.New(nc, "relay", stream.WithLogger(meshtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, stream.Filter{Platform: "team", Conversation: "#dev", Command: "deploy"}, func(ctx context.Context, ev *chatopsv1.Event) error {
			post := stream.Message("team", "#ops", ev.GetFrom().GetName()+" said "+string(ev.GetData()))
			post.Id = "relay-" + ev.GetId()
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return p.Post(pctx, post)
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	// The processor reads from its first start on: wait until it reads
	// (a first deploy shows in #ops).
	say := func(to, text string) {
		in.SayEvent(&chatopsv1.Event{Id: fmt.Sprintf("%s-%s", strings.TrimPrefix(to, "#"), strings.ReplaceAll(text, " ", "_")),
			From: &chatopsv1.Peer{Id: "U1", Name: "ada", Team: "T1"}, To: to, Data: []byte(text)})
	}
	// The lines the processor posted to #ops (the router's replies to
	// what is said there answer a message).
	ops := func(within time.Duration, until func(string) bool) []string {
		var got []string
		deadline := time.After(within)
		for {
			select {
			case ev := <-in.Replies():
				if ev.GetTo() == "#ops" && ev.GetInReplyTo() == "" {
					got = append(got, string(ev.GetData()))
					if until(string(ev.GetData())) {
						return got
					}
				}
			case <-deadline:
				t.Fatalf("#ops got %d lines within %s, not the last one awaited", len(got), within)
			}
		}
	}
	for i := 0; ; i++ {
		say("#dev", fmt.Sprintf("deploy probe%d", i))
		select {
		case ev := <-in.Replies():
			if ev.GetTo() == "#ops" && ev.GetInReplyTo() == "" {
				i = -1
			}
		case <-time.After(500 * time.Millisecond):
		}
		if i < 0 {
			break
		}
		if i == 40 {
			t.Fatal("the processor never posted")
		}
	}
	// Late lines about probes are not part of the burst: the burst's
	// messages are said after a marker whose line is awaited first.
	say("#dev", "deploy marker")
	ops(30*time.Second, func(s string) bool { return s == "ada said deploy marker" })

	const n = 200
	for i := range n {
		say("#dev", fmt.Sprintf("deploy svc%d", i))
		say("#dev", fmt.Sprintf("echo deploy svc%d", i))
		say("#ops", fmt.Sprintf("deploy elsewhere%d", i))
	}
	say("#dev", "deploy end")
	got := ops(60*time.Second, func(s string) bool { return s == "ada said deploy end" })
	seen := map[string]int{}
	for _, l := range got {
		seen[l]++
	}
	lost, dup := 0, 0
	for i := range n {
		switch seen[fmt.Sprintf("ada said deploy svc%d", i)] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	t.Logf("burst of %d deploys in #dev: %d lines in #ops, lost %d, duplicated %d", n, len(got)-1, lost, dup)
	if lost != 0 || dup != 0 || len(got) != n+1 {
		t.Errorf("#ops got %d lines (lost %d, duplicated %d); want %d, each deploy once and nothing else", len(got), lost, dup, n+1)
	}
}
