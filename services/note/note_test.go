package note_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/memory"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/note"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func handler(t *testing.T) *note.Handler {
	t.Helper()
	s := meshtest.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := memory.EnsureBuckets(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	h, err := note.New(js)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var event atomic.Int64

// say runs text as user in channel and returns what the user would see.
func say(t *testing.T, h *note.Handler, user, channel, text string) string {
	t.Helper()
	return run(t, h, user, channel, text, nil)
}

// run is say, with text the answer to a question when answer is not nil.
func run(t *testing.T, h *note.Handler, user, channel, text string, answer *chatopsv1.Answer) string {
	t.Helper()
	req := &chatopsv1.ExecRequest{
		Answer:       answer,
		Args:         strings.Fields(text),
		Text:         text,
		Caller:       &chatopsv1.Peer{Id: user, Name: user},
		Conversation: &chatopsv1.Conversation{Platform: "web", Channel: channel, EventId: fmt.Sprint("e", event.Add(1))},
	}
	rsp := &chatopsv1.ExecResponse{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Exec(ctx, req, rsp); err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	if rsp.Error != "" {
		return "error: " + rsp.Error
	}
	if q := rsp.Question; q != nil {
		return "question: " + q.Text + " state " + string(q.State)
	}
	return string(rsp.Result)
}

func TestNotes(t *testing.T) {
	h := handler(t)
	for _, step := range []struct{ user, channel, text, want string }{
		{"ada", "ops", "notes", "no notes here yet (note add TEXT keeps one)"},
		{"ada", "ops", "note add deploy   at 5pm, *not* before", "noted (note 1)"},
		{"bob", "ops", "note add rollback plan: v1.2", "noted (note 2)"},
		{"bob", "ops", "notes", "1. deploy   at 5pm, *not* before (ada)\n2. rollback plan: v1.2 (bob)"},
		{"ada", "dev", "notes", "no notes here yet (note add TEXT keeps one)"},
		{"ada", "ops", "note add", "question: What should I note? state add"},
		{"ada", "ops", "note forget 3", `error: no note "3" here: give a number from 1 to 2 (notes shows them)`},
		{"ada", "ops", "note forget one", `error: no note "one" here: give a number from 1 to 2 (notes shows them)`},
		{"ada", "ops", "note forget", "error: which note? Usage: note forget N (notes shows the numbers)"},
		{"ada", "ops", "note", "error: usage: note add TEXT | note forget N | notes"},
		{"ada", "ops", "note forget 1", "forgot note 1: deploy   at 5pm, *not* before"},
		{"ada", "ops", "notes", "1. rollback plan: v1.2 (bob)"},
		{"ada", "dev", "note forget 1", "error: there are no notes here to forget"},
		{"ada", "ops", "note add " + strings.Repeat("x", 3000), "error: that note is too long: a note is at most 2048 bytes with its author"},
	} {
		if got := say(t, h, step.user, step.channel, step.text); got != step.want {
			t.Errorf("%s in %s: %q\n got %q\nwant %q", step.user, step.channel, step.text, got, step.want)
		}
	}
}

// note add without text asks; the answer, with the state the question
// carried, is the note. A Micro Bot router (no caller, no conversation)
// is neither asked nor served: it cannot say whose notes.
func TestNoteAsks(t *testing.T) {
	h := handler(t)
	if got := run(t, h, "ada", "ops", "  at 5pm:   deploy ", &chatopsv1.Answer{State: []byte("add")}); got != "noted (note 1)" {
		t.Errorf("the answer: %q", got)
	}
	if got := say(t, h, "bob", "ops", "notes"); got != "1. at 5pm:   deploy (ada)" {
		t.Errorf("notes: %q", got)
	}
	rsp := &chatopsv1.ExecResponse{}
	if err := h.Exec(t.Context(), &chatopsv1.ExecRequest{Args: []string{"note", "add"}}, rsp); err != nil || rsp.Question != nil || rsp.Error != "memory: the request does not say who asks and where: call this command through a botmesh router" {
		t.Errorf("note add from a Micro Bot router: %v %+v", err, rsp)
	}
}

func TestNoteLimit(t *testing.T) {
	h := handler(t)
	var wg sync.WaitGroup
	for i := range note.Limits.MaxKeys {
		wg.Go(func() {
			if got := say(t, h, "ada", "ops", fmt.Sprint("note add n", i)); !strings.HasPrefix(got, "noted") {
				t.Errorf("note %d: %q", i, got)
			}
		})
	}
	wg.Wait()
	want := "error: this conversation memory is full: it holds at most 50 entries; forget one first"
	if got := say(t, h, "ada", "ops", "note add one more"); got != want {
		t.Errorf("note past the limit: %q, want %q", got, want)
	}
	if got := say(t, h, "ada", "ops", "notes"); strings.Count(got, "\n") != note.Limits.MaxKeys-1 {
		t.Errorf("notes at the limit: %d lines, want %d", strings.Count(got, "\n")+1, note.Limits.MaxKeys)
	}
}
