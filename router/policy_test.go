package router_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/router/ratelimit"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

const testPolicy = `
default: allow
groups:
  admins: ["test:UADMIN"]
rules:
  - name: registry changes for admins, confirmed
    commands: ["deregister service"]
    groups: [admins]
    effect: allow
    confirm: true
  - name: admins only
    commands: ["deregister service", "help"]
    users: ["test:NOHELP"]
    effect: deny
  - name: registry changes are for admins
    commands: ["deregister service"]
    effect: deny
`

// askAs sends text as user (in conversation C1) and returns the reply.
func (e *env) askAs(user, text string) *chatopsv1.Event {
	e.t.Helper()
	reply := chatopsv1.ReplySubject("test", "testgw", nuid.Next())
	sub, err := e.nc.SubscribeSync(reply)
	if err != nil {
		e.t.Fatal(err)
	}
	ev := &chatopsv1.Event{Id: nuid.Next(), Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, From: &chatopsv1.Peer{Id: user}, To: "C1",
		Data: []byte(text), Platform: "test", Gateway: "testgw", ReplyTo: reply}
	if err := e.nc.Publish(chatopsv1.SubjectIn("test"), mustMarshal(e.t, ev)); err != nil {
		e.t.Fatal(err)
	}
	return e.await(sub, 10*time.Second)
}

// registryCmd serves "deregister service" and counts its runs.
func registryCmd(runs *atomic.Int32) handler {
	return handler{
		help: func(rsp *chatopsv1.HelpResponse) error {
			rsp.Commands = []*chatopsv1.CommandSpec{{Pattern: "deregister service", Usage: "deregister service NAME", Description: "removes a service"}}
			return nil
		},
		exec: func(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
			runs.Add(1)
			rsp.Result = []byte("deregistered " + strings.Join(req.Args[2:], " ") + " for " + req.Caller.GetId())
			return nil
		},
	}
}

func TestPolicyAndConfirmation(t *testing.T) {
	pol, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	s := meshtest.NATS(t)
	e := newEnvOn(t, s, router.Config{Policy: pol, ConfirmWindow: 2 * time.Second})
	var runs atomic.Int32
	e.serve("registry-cmd", registryCmd(&runs))
	waitFor(t, func() bool {
		return strings.Contains(string(e.askAs("UADMIN", "help").GetData()), "deregister service [name]")
	})

	// A non-admin is refused, with the reason, and nothing runs.
	rep := e.askAs("U1", "deregister service billing")
	if !isError(rep) || string(rep.GetData()) != `you may not run "deregister service" here (policy: registry changes are for admins). Ask an admin if you need it.` {
		t.Errorf("non-admin: %s %q", rep.GetType(), rep.GetData())
	}
	// help shows users only what they may run.
	if help := string(e.askAs("U1", "help").GetData()); strings.Contains(help, "deregister") {
		t.Errorf("help shows a non-admin what they may not run:\n%s", help)
	}
	if rep := e.askAs("NOHELP", "help"); !isError(rep) {
		t.Errorf("help denied by the policy answered: %q", rep.GetData())
	}

	// An admin is asked to confirm.
	rep = e.askAs("UADMIN", "deregister service billing")
	if !isReply(rep) || !strings.HasPrefix(string(rep.GetData()), `"deregister service" needs your confirmation: reply yes within 2s`) {
		t.Fatalf("admin: %s %q", rep.GetType(), rep.GetData())
	}
	// Another user's yes does nothing.
	if rep := e.askAs("U1", "yes"); !isError(rep) || !strings.HasPrefix(string(rep.GetData()), "nothing to confirm") {
		t.Errorf("someone else's yes: %s %q", rep.GetType(), rep.GetData())
	}
	if runs.Load() != 0 {
		t.Fatal("the command ran before its author confirmed")
	}
	// The author's yes, taken by another router replica (the first one is
	// gone), runs it once.
	second := newEnvOn(t, s, router.Config{Policy: pol, ConfirmWindow: 2 * time.Second})
	e.stopRouter()
	rep = second.askAs("UADMIN", "yes")
	if !isReply(rep) || string(rep.GetData()) != "deregistered billing for UADMIN" {
		t.Errorf("confirmed: %s %q", rep.GetType(), rep.GetData())
	}
	if rep := second.askAs("UADMIN", "yes"); !isError(rep) {
		t.Errorf("a second yes: %s %q", rep.GetType(), rep.GetData())
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("ran %d times, want 1", n)
	}

	// No cancels; a confirmation expires.
	second.askAs("UADMIN", "deregister service a")
	if rep := second.askAs("UADMIN", "no"); string(rep.GetData()) != "cancelled" {
		t.Errorf("no: %q", rep.GetData())
	}
	second.askAs("UADMIN", "deregister service b")
	time.Sleep(2500 * time.Millisecond)
	if rep := second.askAs("UADMIN", "yes"); !isError(rep) {
		t.Errorf("yes after the window: %s %q", rep.GetType(), rep.GetData())
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("ran %d times, want still 1", n)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, router.Config{RateLimits: ratelimit.Config{UserPerMinute: 6, UserBurst: 2}})
	for i := range 2 {
		if rep := e.askAs("U1", "ping"); string(rep.GetData()) != "pong" {
			t.Fatalf("message %d: %q", i, rep.GetData())
		}
	}
	// Three at once exceed the burst, not the 6 a minute: the message
	// says which.
	rep := e.askAs("U1", "ping")
	if !isError(rep) || !regexp.MustCompile(`^slow down: you sent more than 2 commands at once; try again in 1[01]s\.$`).Match(rep.GetData()) {
		t.Errorf("over the burst: %s %q", rep.GetType(), rep.GetData())
	}
	if rep := e.askAs("U2", "ping"); string(rep.GetData()) != "pong" {
		t.Errorf("another user limited too: %q", rep.GetData())
	}
}

// Every command leaves an audit record in the audit stream.
func TestAuditStream(t *testing.T) {
	e := newEnv(t, router.Config{})
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return isReply(e.askAs("U7", "echo audited")) })
	e.askAs("U7", "nosuchcommand")

	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, audit.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !hasStatus(recs, audit.StatusUnknown) {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var r audit.Record
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				t.Fatalf("audit record is not JSON: %v", err)
			}
			recs = append(recs, r)
		}
	}
	var ok *audit.Record
	for i := range recs {
		if recs[i].Text == "echo audited" && recs[i].Status == audit.StatusOK {
			ok = &recs[i]
		}
	}
	if ok == nil {
		t.Fatalf("no ok record for the echo in %d records", len(recs))
	}
	if ok.Type != audit.RecordType || ok.User != "U7" || ok.Platform != "test" || ok.Channel != "C1" || ok.Command != "echo" ||
		ok.Service != "go.micro.bot.echo" || !strings.HasPrefix(ok.Node, "go.micro.bot.echo-") || ok.RequestID == "" || ok.Duration <= 0 || ok.Router == "" {
		t.Errorf("record: %+v", *ok)
	}
	if !hasStatus(recs, audit.StatusUnknown) {
		t.Error("no record for the unknown command")
	}
}

func hasStatus(recs []audit.Record, status string) bool {
	for _, r := range recs {
		if r.Status == status {
			return true
		}
	}
	return false
}
