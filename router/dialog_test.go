package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go/jetstream"
)

// quiz asks two questions, keeping the first answer in its state.
var quiz = handler{exec: func(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	a := req.GetAnswer()
	switch {
	case a == nil:
		rsp.Question = &chatopsv1.Question{Text: "Your name?", State: []byte("name")}
	case string(a.GetState()) == "name":
		rsp.Question = &chatopsv1.Question{Text: "Hello " + req.GetText() + ". Your town?", State: []byte("town:" + req.GetText())}
	case strings.HasPrefix(string(a.GetState()), "town:"):
		rsp.Result = []byte(strings.TrimPrefix(string(a.GetState()), "town:") + " of " + req.GetText() + " (asked " + req.GetCommand() + ", answered by " + req.GetCaller().GetId() + ")")
	default:
		rsp.Error = "lost my state: " + string(a.GetState())
	}
	return nil
}}

func text(rep *chatopsv1.Event) string {
	if isError(rep) {
		return "error: " + string(rep.GetData())
	}
	return string(rep.GetData())
}

// Two users in one channel answer their own dialogs, interleaved; a
// second router replica continues them when the first is gone; cancel
// leaves one.
func TestDialogs(t *testing.T) {
	s := meshtest.NATS(t)
	e := newEnvOn(t, s, router.Config{})
	e.serve("quiz", quiz)
	waitFor(t, func() bool {
		return text(e.askAs("U1", "help")) != "" && strings.Contains(text(e.askAs("U1", "help")), "quiz")
	})

	steps := func(e *env, steps [][3]string) {
		t.Helper()
		for _, st := range steps {
			if got := text(e.askAs(st[0], st[1])); got != st[2] {
				t.Errorf("%s says %q:\n got %q\nwant %q", st[0], st[1], got, st[2])
			}
		}
	}
	steps(e, [][3]string{
		{"U1", "quiz", "Your name? (reply, or cancel)"},
		{"U2", "quiz", "Your name? (reply, or cancel)"},
		{"U2", "Bob", "Hello Bob. Your town? (reply, or cancel)"},
		{"U1", "Ada", "Hello Ada. Your town? (reply, or cancel)"},
	})
	// The router that asked is gone; another one takes the answers.
	second := newEnvOn(t, s, router.Config{})
	e.stopRouter()
	steps(second, [][3]string{
		{"U1", "London", "Ada of London (asked quiz, answered by U1)"},
		{"U2", "Paris", "Bob of Paris (asked quiz, answered by U2)"},
		// The dialog is over: the next message is a command again.
		{"U1", "ping", "pong"},
		{"U1", "quiz", "Your name? (reply, or cancel)"},
		{"U1", "cancel", "cancelled: quiz asks no more"},
		{"U1", "ping", "pong"},
	})
	// Two routers running: each question goes to either; the one left
	// takes every answer, those to the other's questions too (it learnt
	// of them by watching the bucket).
	third := newEnvOn(t, s, router.Config{})
	users := []string{"U3", "U4", "U5", "U6"}
	for _, u := range users {
		steps(second, [][3]string{{u, "quiz", "Your name? (reply, or cancel)"}})
	}
	second.stopRouter()
	for _, u := range users {
		steps(third, [][3]string{{u, "name of " + u, "Hello name of " + u + ". Your town? (reply, or cancel)"}})
	}
}

// The audit record of an answer says what it answered, not what it said:
// a service may ask for a secret.
func TestDialogAnswerNotAudited(t *testing.T) {
	e := newEnv(t, router.Config{})
	e.serve("login", handler{exec: func(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
		if req.GetAnswer() == nil {
			rsp.Question = &chatopsv1.Question{Text: "Password?"}
			return nil
		}
		rsp.Result = []byte("logged in")
		return nil
	}})
	waitFor(t, func() bool { return strings.Contains(text(e.askAs("U1", "help")), "login") })
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(e.askAs("U1", "login")); got != "Password? (reply, or cancel)" {
		t.Fatalf("login: %q", got)
	}
	if got := text(e.askAs("U1", "hunter2-s3cret")); got != "logged in" {
		t.Fatalf("the answer: %q", got)
	}
	var recs []audit.Record
	waitFor(t, func() bool {
		recs = auditRecords(t, js)
		for _, r := range recs {
			if r.Text == "(an answer to login)" && r.Command == "login" && r.Status == audit.StatusOK {
				return true
			}
		}
		return false
	})
	for _, r := range recs {
		if strings.Contains(r.Text, "hunter2") {
			t.Errorf("the audit record shows the answer: %+v", r)
		}
	}
}

// An answer after the dialog's window gets a note; a command then runs as
// one.
func TestDialogExpires(t *testing.T) {
	e := newEnv(t, router.Config{DialogWindow: time.Second})
	e.serve("quiz", quiz)
	waitFor(t, func() bool { return strings.Contains(text(e.askAs("U1", "help")), "quiz") })
	for _, late := range []struct{ text, want string }{
		{"Ada", "error: quiz's question (Your name?) expired: questions wait 1s. Run quiz again."},
		{"ping", "pong"},
	} {
		if got := text(e.askAs("U1", "quiz")); got != "Your name? (reply, or cancel)" {
			t.Fatalf("quiz: %q", got)
		}
		time.Sleep(1100 * time.Millisecond) // the window, passing
		if got := text(e.askAs("U1", late.text)); got != late.want {
			t.Errorf("%q after the window: %q, want %q", late.text, got, late.want)
		}
		if got := text(e.askAs("U1", "ping")); got != "pong" {
			t.Errorf("after the expired dialog: %q", got)
		}
	}
}

// auditRecords reads the audit stream's records so far.
func auditRecords(t *testing.T, js jetstream.JetStream) []audit.Record {
	t.Helper()
	cons, err := js.OrderedConsumer(t.Context(), audit.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var r audit.Record
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				t.Fatalf("audit record is not JSON: %v", err)
			}
			recs = append(recs, r)
		}
		if n == 0 {
			return recs
		}
	}
}

// A confirmation is a dialog the router owns: it waits in the dialogs
// bucket (there is no other), other commands leave it waiting, and cancel
// drops it as no does.
func TestConfirmationIsADialog(t *testing.T) {
	pol, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	s := meshtest.NATS(t)
	e := newEnvOn(t, s, router.Config{Policy: pol})
	var runs atomic.Int32
	e.serve("registry-cmd", registryCmd(&runs))
	waitFor(t, func() bool {
		return strings.Contains(text(e.askAs("UADMIN", "help")), "deregister service [name]")
	})
	if got := text(e.askAs("UADMIN", "deregister service billing")); !strings.HasPrefix(got, `"deregister service" needs your confirmation: reply yes within 1m0s`) {
		t.Fatalf("deregister: %q", got)
	}
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, router.DialogBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 || !strings.HasPrefix(keys[0], "c-") {
		t.Errorf("dialogs bucket keys %q (%v), want the confirmation's", keys, err)
	}
	if _, err := js.KeyValue(ctx, "botmesh_confirm"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the old confirmations bucket: %v, want %v", err, jetstream.ErrBucketNotFound)
	}
	for _, st := range [][2]string{
		{"ping", "pong"}, // another command: the confirmation waits
		{"cancel", "cancelled"},
		{"yes", "error: nothing to confirm: you have no command waiting here (they wait 1m0s)"},
		{"cancel", "error: nothing to cancel: you have no command waiting here"},
	} {
		if got := text(e.askAs("UADMIN", st[0])); got != st[1] {
			t.Errorf("%q: %q, want %q", st[0], got, st[1])
		}
	}
	if n := runs.Load(); n != 0 {
		t.Errorf("a cancelled command ran %d times", n)
	}
}
