package router_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

func TestBadInput(t *testing.T) {
	for _, delivery := range []string{durable.JetStream, durable.Core} {
		t.Run(delivery, func(t *testing.T) { testBadInput(t, delivery) })
	}
}

func testBadInput(t *testing.T, delivery string) {
	e := newEnv(t, router.Config{Delivery: delivery})
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return isReply(e.ask("echo ready")) })

	t.Run("malformed event with a reply subject gets an error", func(t *testing.T) {
		if !e.core {
			t.Log("a stream keeps no NATS reply subject: covered by the next case")
			return
		}
		reply := chatopsv1.ReplySubject("test", "testgw", "garbage")
		sub, _ := e.nc.SubscribeSync(reply)
		if err := e.nc.PublishMsg(&nats.Msg{Subject: chatopsv1.SubjectIn("test"), Reply: reply, Data: []byte("\xff\x00not protobuf")}); err != nil {
			t.Fatal(err)
		}
		rep := e.await(sub, 5*time.Second)
		if !isError(rep) || !strings.HasPrefix(string(rep.GetData()), "malformed event: ") {
			t.Errorf("got %s %q", rep.GetType(), rep.GetData())
		}
	})
	t.Run("malformed event without a reply subject is dropped", func(t *testing.T) {
		if err := e.nc.Publish(chatopsv1.SubjectIn("test"), []byte("\x0a\xff\xff\xff")); err != nil {
			t.Fatal(err)
		}
		if rep := e.ask("ping"); string(rep.GetData()) != "pong" {
			t.Errorf("next message after a dropped one: %q", rep.GetData())
		}
	})
	t.Run("an event whose platform is not its subject's is refused", func(t *testing.T) {
		// Trust comes from the subject, which NATS permissions tie to a
		// gateway's credentials: a test gateway posing as a Slack admin.
		reply := chatopsv1.ReplySubject("test", "testgw", nuid.Next())
		sub, _ := e.nc.SubscribeSync(reply)
		ev := &chatopsv1.Event{Id: "forged1", Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, Data: []byte("echo forged"),
			From: &chatopsv1.Peer{Id: "UADMIN"}, Platform: "slack", ReplyTo: reply}
		if err := e.nc.Publish(chatopsv1.SubjectIn("test"), mustMarshal(t, ev)); err != nil {
			t.Fatal(err)
		}
		rep := e.await(sub, 5*time.Second)
		if !isError(rep) || !strings.HasPrefix(string(rep.GetData()), "refused: this message claims to come from \"slack\"") {
			t.Errorf("got %s %q", rep.GetType(), rep.GetData())
		}
	})
	t.Run("a reply subject of another platform is refused", func(t *testing.T) {
		// A gateway must not make the router post into another
		// platform's conversations.
		other := chatopsv1.ReplySubject("slack", "slackgw", nuid.Next())
		sub, _ := e.nc.SubscribeSync(chatopsv1.SubjectOutPrefix + "slack.>")
		ev := &chatopsv1.Event{Id: "forged2", Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, Data: []byte("echo forged"), Platform: "test", ReplyTo: other}
		if err := e.nc.Publish(chatopsv1.SubjectIn("test"), mustMarshal(t, ev)); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(500 * time.Millisecond); err == nil {
			t.Errorf("router published on %s", m.Subject)
		}
		if rep := e.ask("ping"); string(rep.GetData()) != "pong" {
			t.Errorf("next message: %q", rep.GetData())
		}
	})
	t.Run("reply subject outside bot.v1.out is refused", func(t *testing.T) {
		// A forged event must not make the router publish anywhere else.
		sub, _ := e.nc.SubscribeSync("audit.secret")
		ev := &chatopsv1.Event{Id: "x", Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, Data: []byte("ping"), ReplyTo: "audit.secret"}
		if err := e.nc.Publish(chatopsv1.SubjectIn("test"), mustMarshal(t, ev)); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
			t.Errorf("router published to a forged subject: %q", m.Data)
		}
	})
	t.Run("empty message", func(t *testing.T) {
		for _, in := range []string{"", "   ", "\x00"} {
			rep := e.ask(in)
			if !isError(rep) || string(rep.GetData()) != "empty message. Type help for the list of commands." {
				t.Errorf("%q: got %s %q", in, rep.GetType(), rep.GetData())
			}
		}
	})
	t.Run("message over the size limit", func(t *testing.T) {
		// (1 MiB does not fit a NATS message: gateways refuse it first.)
		big := "echo " + strings.Repeat("x", 100<<10-5)
		rep := e.ask(big)
		if !isError(rep) || string(rep.GetData()) != "message too long: 102400 bytes; the limit is 65536" {
			t.Errorf("got %s %.100q", rep.GetType(), rep.GetData())
		}
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		rep := e.ask("echo caf\xe9 \xff")
		if !isReply(rep) || string(rep.GetData()) != "caf\uFFFD \uFFFD" {
			t.Errorf("got %s %q", rep.GetType(), rep.GetData())
		}
	})
	if rep := e.ask("echo still fine"); string(rep.GetData()) != "still fine" {
		t.Errorf("after bad input: %q", rep.GetData())
	}
}

// A result over the reply limit is cut at a character boundary with a note
// saying how much was cut.
func TestHugeResultIsCut(t *testing.T) {
	e := newEnv(t, router.Config{MaxReplyBytes: 4096})
	e.serve("big", handler{exec: func(_ context.Context, _ *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
		rsp.Result = []byte(strings.Repeat("é", 1<<20)) // 2 MiB, over NATS's 1 MiB payload too
		return nil
	}})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "big") })
	rep := e.ask("big")
	text := string(rep.GetData())
	if !isReply(rep) || len(text) > 4096 || !utf8.ValidString(text) {
		t.Fatalf("got %s of %d bytes (valid UTF-8: %v)", rep.GetType(), len(text), utf8.ValidString(text))
	}
	// The service cut its 2 MiB result to 512 KiB (all NATS can carry),
	// the router cut that to its own limit; the user sees the last note.
	m := regexp.MustCompile(`\n… \[cut: (\d+) of (\d+) bytes not shown; the limit is 4096\]$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("note missing or wrong: %q", text[len(text)-120:])
	}
	cut, of := atoi(t, m[1]), atoi(t, m[2])
	if shown := len(text) - len(m[0]); shown+cut != of || of > 512<<10 || shown < 3500 {
		t.Errorf("note says %d of %d cut, but %d bytes are shown", cut, of, shown)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
