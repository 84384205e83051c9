package relay_test

import (
	"context"
	"strings"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/sdk/stream"
	"github.com/botmesh/botmesh/services/relay"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// The relay, on a real nats-server, posts to irc's #ops a line for each
// deploy said in slack's C0DEV, and for nothing else, in the order said.
func TestRelaysDeploys(t *testing.T) {
	s := meshtest.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js := meshtest.RouterStreams(t, nc, "slack", "irc")
	p, err := stream.New(nc, relay.Name, stream.WithLogger(meshtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- relay.Run(rctx, p, relay.Config{From: "slack:C0DEV", To: "irc:#ops", Command: "deploy", PostTimeout: 10 * time.Second})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()
	for i := 0; ; i++ {
		if _, err := js.Consumer(ctx, durable.EventsStream, relay.Name); err == nil {
			break
		}
		if i == 300 {
			t.Fatal("the relay's consumer was not made")
		}
		time.Sleep(50 * time.Millisecond)
	}

	say := func(platform, to, id, who, text string) {
		meshtest.Say(t, js, &chatopsv1.Event{Id: id, Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, Platform: platform, To: to,
			From: &chatopsv1.Peer{Id: "U-" + who, Name: who}, Data: []byte(text), ReplyTo: chatopsv1.ReplySubject(platform, "gw1", id)})
	}
	say("slack", "C0DEV", "1", "alice", "deploy api v2")
	say("slack", "C0DEV", "2", "alice", "echo deploy")
	say("slack", "C0OTHER", "3", "alice", "deploy web")
	say("irc", "C0DEV", "4", "carol", "deploy db")
	say("slack", "C0DEV", "5", "bob", "Deploy   worker")
	say("slack", "C0DEV", "1", "alice", "deploy api v2") // a gateway's retry
	say("slack", "C0DEV", "6", "bob", "deploy last")
	want := []string{
		`alice said "deploy api v2" in slack:C0DEV`,
		`bob said "Deploy worker" in slack:C0DEV`,
		`bob said "deploy last" in slack:C0DEV`,
	}

	// What an IRC gateway would post: the outbound path of irc.
	name, err := durable.EnsureOutboundConsumer(ctx, js, "irc", "gw1", durable.KeepOutboundShared)
	if err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, durable.ReplyStream("irc"), name)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	// The relay handles events in order: the last one's line ends it.
	for i := 0; i < 30 && (len(got) == 0 || got[len(got)-1] != want[len(want)-1]); i++ {
		batch, err := c.Fetch(10, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			ev := &chatopsv1.Event{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				t.Fatal(err)
			}
			if ev.GetPlatform() != "irc" || ev.GetTo() != "#ops" {
				t.Errorf("posted to %s:%s, want irc:#ops", ev.GetPlatform(), ev.GetTo())
			}
			got = append(got, string(ev.GetData()))
			_ = m.Ack()
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("posted:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A mistake in the flags is said in a sentence that names the flag.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*relay.Config)
		want string
	}{
		{"no to", func(c *relay.Config) {}, `--to "": give the conversation to post to as platform:conversation`},
		{"to without platform", func(c *relay.Config) { c.To = "#ops" }, `--to "#ops": give the conversation`},
		{"bad from", func(c *relay.Config) { c.To, c.From = "irc:#ops", "sl.ack:C1" }, `--from "sl.ack:C1": give a conversation as platform:conversation`},
		{"no command", func(c *relay.Config) { c.To, c.Command = "irc:#ops", " " }, "--command is empty"},
		{"no timeout", func(c *relay.Config) { c.To, c.PostTimeout = "irc:#ops", 0 }, "--post_timeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := relay.DefaultConfig()
			tc.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
	c := relay.DefaultConfig()
	c.To, c.From = "irc:#ops", "slack"
	if err := c.Validate(); err != nil {
		t.Errorf("a platform alone as --from: %v", err)
	}
}
