package router_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Attacks on the trust boundary (issue 12): each test fails on the router
// before platform-qualified ids, query names with their targets and secret
// arguments.

// askOn sends text as user of platform, as that platform's gateway would
// (on its own subject), and returns the reply.
func (e *env) askOn(platform, user, text string) *chatopsv1.Event {
	e.t.Helper()
	reply := chatopsv1.ReplySubject(platform, "gw", nuid.Next())
	sub, err := e.nc.SubscribeSync(reply)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ev := &chatopsv1.Event{Id: nuid.Next(), Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, From: &chatopsv1.Peer{Id: user}, To: "C1",
		Data: []byte(text), Platform: platform, Gateway: "gw", ReplyTo: reply}
	if err := e.nc.Publish(chatopsv1.SubjectIn(platform), mustMarshal(e.t, ev)); err != nil {
		e.t.Fatal(err)
	}
	return e.await(sub, 10*time.Second)
}

// commandService serves the given command specs and records each Exec's
// arguments.
type commandService struct {
	specs []*chatopsv1.CommandSpec
	mu    sync.Mutex
	calls [][]string
}

func (c *commandService) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	rsp.Commands = c.specs
	return nil
}

func (c *commandService) Exec(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	c.mu.Lock()
	c.calls = append(c.calls, req.GetArgs())
	c.mu.Unlock()
	rsp.Result = []byte("ran " + req.GetCommand())
	return nil
}

func (c *commandService) runs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

func (c *commandService) last() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return nil
	}
	return c.calls[len(c.calls)-1]
}

func specs(patterns ...string) []*chatopsv1.CommandSpec {
	var out []*chatopsv1.CommandSpec
	for _, p := range patterns {
		out = append(out, &chatopsv1.CommandSpec{Pattern: p, Usage: p})
	}
	return out
}

func mustPolicy(t *testing.T, doc string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitHelp waits until help (asked by a user who may run everything it
// lists) shows usage.
func waitHelp(e *env, platform, user, usage string) {
	e.t.Helper()
	waitFor(e.t, func() bool { return strings.Contains(string(e.askOn(platform, user, "help").GetData()), usage) })
}

// An IRC user whose nick is an admin's account name, or a Slack admin's
// user id, gets no admin rights; the admin's account does.
func TestIRCNickIsNotAnAdmin(t *testing.T) {
	pol := mustPolicy(t, `
default: allow
groups:
  admins: ["irc:account:alice", "slack:U024BE7LH"]
rules:
  - name: registry changes are for admins
    commands: ["deregister service"]
    groups: [admins]
    effect: allow
  - name: admins only
    commands: ["deregister service"]
    effect: deny
`)
	e := newEnv(t, router.Config{Policy: pol})
	reg := &commandService{specs: specs("deregister service")}
	e.serve("registry", reg)
	waitHelp(e, "slack", "U024BE7LH", "deregister service")

	// As the IRC gateway gives ids: nick:NICK, account:NAME. A bare id
	// is what a gateway from before id kinds sent, for nicks and accounts
	// alike.
	for _, user := range []string{"nick:alice", "nick:u024be7lh", "nick:U024BE7LH", "alice", "U024BE7LH", "account:U024BE7LH", "slack:U024BE7LH"} {
		rep := e.askOn("irc", user, "deregister service billing")
		if !isError(rep) || !strings.HasPrefix(string(rep.GetData()), `you may not run "deregister service" here (policy: admins only)`) {
			t.Errorf("irc user %q: %s %q", user, rep.GetType(), rep.GetData())
		}
	}
	if n := reg.runs(); n != 0 {
		t.Fatalf("an impostor's deregister ran %d times", n)
	}
	// The admins themselves: asked to confirm (registry changes always
	// are, though the rule does not say so), then run.
	for _, admin := range []struct{ platform, user string }{{"irc", "account:alice"}, {"irc", "account:Alice"}, {"slack", "U024BE7LH"}} {
		rep := e.askOn(admin.platform, admin.user, "deregister service billing")
		if !isReply(rep) || !strings.Contains(string(rep.GetData()), "needs your confirmation") {
			t.Errorf("admin %s:%s: %s %q", admin.platform, admin.user, rep.GetType(), rep.GetData())
			continue
		}
		if rep := e.askOn(admin.platform, admin.user, "yes"); !isReply(rep) || string(rep.GetData()) != "ran deregister service" {
			t.Errorf("admin %s:%s confirmed: %s %q", admin.platform, admin.user, rep.GetType(), rep.GetData())
		}
	}
	if n := reg.runs(); n != 3 {
		t.Errorf("the admins' deregisters ran %d times, want 3", n)
	}
}

// A policy id without a platform matched that id on every platform (a
// Slack admin's id taken as an IRC nick passed as the admin): it is refused
// when the policy loads, saying why.
func TestUnqualifiedPolicyIDRefused(t *testing.T) {
	for _, doc := range []string{
		"default: allow\ngroups:\n  admins: [U024BE7LH]\n",
		"default: allow\nrules:\n  - users: [alice]\n    commands: [query]\n    effect: allow\n",
		"default: allow\ngroups:\n  admins: [\"irc:alice\"]\n",
	} {
		_, err := policy.Parse([]byte(doc))
		if err == nil {
			t.Errorf("loaded:\n%s", doc)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "has no platform: write platform:id") && !strings.Contains(msg, "must say which kind of id it is") {
			t.Errorf("error %q does not say what to write", msg)
		}
	}
}

// query never calls a command service: `query go.micro.bot.registry
// Command.Exec {…}` ran register service without its confirmation. The
// router refuses it (whatever the policy, for admins too) and calls
// neither the query service nor the command service.
func TestQueryNeverCallsCommandServices(t *testing.T) {
	e := newEnv(t, router.Config{Policy: mustPolicy(t, "default: allow\n")})
	q := &commandService{specs: specs("query", "health")}
	reg := &commandService{specs: specs("register service", "list services")}
	e.serve("query", q)
	e.serve("registry", reg)
	waitHelp(e, "test", "U1", "register service")

	for _, text := range []string{
		`query go.micro.bot.registry Command.Exec {"args":["register","service","{\"name\":\"x\"}"]}`,
		`query GO.MICRO.BOT.REGISTRY Command.Exec {}`,
		`query go.micro.bot.anything Command.Help`,
	} {
		rep := e.askOn("test", "U1", text)
		if !isError(rep) || !strings.HasPrefix(string(rep.GetData()), "query does not call command services such as ") {
			t.Errorf("%s: %s %q", text, rep.GetType(), rep.GetData())
		}
	}
	rep := e.askOn("test", "U1", `query go.micro.bot.registry Command.Exec {}`)
	if want := "query does not call command services such as go.micro.bot.registry: run the command itself (list services, register service); type help for the commands and their usage."; string(rep.GetData()) != want {
		t.Errorf("refusal %q, want %q", rep.GetData(), want)
	}
	if n, m := q.runs(), reg.runs(); n != 0 || m != 0 {
		t.Errorf("query service called %d times, registry service %d times", n, m)
	}
	// Other services are queried as before.
	if rep := e.askOn("test", "U1", `query greeter Greeter.Hello {}`); !isReply(rep) || q.runs() != 1 {
		t.Errorf("query greeter: %s %q", rep.GetType(), rep.GetData())
	}
}

// A policy names queries by service and method: a non-admin may call
// greeter's methods and nothing else; an admin anything.
func TestQueryLimitedByPolicy(t *testing.T) {
	pol := mustPolicy(t, `
default: deny
groups:
  admins: ["test:UADMIN"]
rules:
  - name: anyone may greet
    commands: [help, query, "query greeter Greeter.*"]
    effect: allow
  - name: admins query anything
    commands: ["query *"]
    groups: [admins]
    effect: allow
`)
	e := newEnv(t, router.Config{Policy: pol})
	q := &commandService{specs: specs("query")}
	e.serve("query", q)
	waitHelp(e, "test", "U1", "query")

	if rep := e.askOn("test", "U1", `query greeter Greeter.Hello {"name":"Ada"}`); !isReply(rep) || strings.Join(q.last(), " ") != `query greeter Greeter.Hello {"name":"Ada"}` {
		t.Errorf("greeter for a non-admin: %s %q", rep.GetType(), rep.GetData())
	}
	if rep := e.askOn("test", "U1", `query greeter Greeter.Hello{"name":"Ada"}`); !isReply(rep) {
		t.Errorf("greeter with the JSON against the method: %s %q", rep.GetType(), rep.GetData())
	}
	before := q.runs()
	for _, text := range []string{`query billing Billing.Refund {"id":1}`, `query greeter Admin.Reset {}`} {
		rep := e.askOn("test", "U1", text)
		name := strings.Join(strings.Fields(text)[:3], " ")
		if want := `you may not run "` + name + `" here (policy: default). Ask an admin if you need it.`; !isError(rep) || string(rep.GetData()) != want {
			t.Errorf("%s for a non-admin: %s %q, want %q", text, rep.GetType(), rep.GetData(), want)
		}
	}
	if n := q.runs(); n != before {
		t.Errorf("refused queries reached the service: %d calls", n-before)
	}
	if rep := e.askOn("test", "UADMIN", `query billing Billing.Refund {"id":1}`); !isReply(rep) || q.runs() != before+1 {
		t.Errorf("billing for an admin: %s %q", rep.GetType(), rep.GetData())
	}
}

// The shipped policy: read-only commands for everyone; registry changes
// and query for admins, of whom there are none until named (the shell
// user used to be one); an admin named at start (the all-in-one's
// terminal user) is asked to confirm.
func TestDefaultPolicy(t *testing.T) {
	s := meshtest.NATS(t)
	e := newEnvOn(t, s, router.Config{})
	reg := &commandService{specs: specs("list services", "get service", "register service", "deregister service")}
	q := &commandService{specs: specs("query", "health")}
	e.serve("registry", reg)
	e.serve("query", q)
	waitHelp(e, "test", "U1", "list services")

	for _, who := range []struct{ platform, user string }{{"test", "U1"}, {"shell", "root"}, {"cli", "root"}, {"irc", "nick:root"}} {
		for _, text := range []string{`register service {"name":"x"}`, `deregister service {"name":"x"}`, `query greeter Greeter.Hello {}`, "query"} {
			if rep := e.askOn(who.platform, who.user, text); !isError(rep) || !strings.HasPrefix(string(rep.GetData()), "you may not run ") {
				t.Errorf("%s:%s %s: %s %q", who.platform, who.user, text, rep.GetType(), rep.GetData())
			}
		}
		for _, text := range []string{"list services", "get service greeter", "health greeter", "ping"} {
			if rep := e.askOn(who.platform, who.user, text); !isReply(rep) {
				t.Errorf("%s:%s %s: %s %q", who.platform, who.user, text, rep.GetType(), rep.GetData())
			}
		}
		if help := string(e.askOn(who.platform, who.user, "help").GetData()); strings.Contains(help, "register") || strings.Contains(help, "query") || !strings.Contains(help, "list services") {
			t.Errorf("help for %s:%s:\n%s", who.platform, who.user, help)
		}
	}
	if n := reg.runs(); n != 4*2 { // list and get services only
		t.Errorf("registry service ran %d times, want the 8 lists and gets", n)
	}
	if n := q.runs(); n != 4 { // the health checks only
		t.Errorf("query service ran %d times, want the 4 health checks", n)
	}

	// The all-in-one names its terminal's user at start (the first router
	// goes: they would share the messages).
	e.stopRouter()
	pol, err := policy.Default().WithAdmins("shell:alice")
	if err != nil {
		t.Fatal(err)
	}
	aio := newEnvOn(t, s, router.Config{Policy: pol})
	if rep := aio.askOn("shell", "alice", `register service {"name":"x"}`); !isReply(rep) || !strings.Contains(string(rep.GetData()), "needs your confirmation") {
		t.Errorf("named admin: %s %q", rep.GetType(), rep.GetData())
	}
	if rep := aio.askOn("shell", "bob", `register service {"name":"x"}`); !isError(rep) {
		t.Errorf("another shell user: %s %q", rep.GetType(), rep.GetData())
	}
}

// newEnvLogged is newEnvOn with the router's log (at debug level) in log.
func newEnvLogged(t *testing.T, s *server.Server, cfg router.Config, log *meshtest.Buffer) *env {
	t.Helper()
	m := meshtest.Mesh(t, s, nil, mesh.WithLogger(slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	r, err := router.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-r.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("router not ready after 10s")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &env{t: t, s: s, nc: nc, r: r, stopRouter: cancel}
}

// A command marks an argument secret (CommandSpec.secret_args): the
// service gets it, but no audit record and no line of the router's log
// holds it, whether the command ran, was refused, was forged or waits for
// confirmation.
func TestSecretArgumentsRedacted(t *testing.T) {
	const secret = "hunter2-s3cr3t"
	s := meshtest.NATS(t)
	var log meshtest.Buffer
	pol := mustPolicy(t, `
default: allow
rules:
  - name: no logins for U9
    commands: [login]
    users: ["test:U9"]
    effect: deny
  - name: rotations are confirmed
    commands: ["rotate token"]
    effect: allow
    confirm: true
`)
	e := newEnvLogged(t, s, router.Config{Policy: pol}, &log)
	svc := &commandService{specs: []*chatopsv1.CommandSpec{
		{Pattern: "login", Usage: "login USER PASSWORD", SecretArgs: []uint32{2}},
		{Pattern: "rotate token", Usage: "rotate token NAME TOKEN", SecretArgs: []uint32{3, 9}},
	}}
	e.serve("vault", svc)
	waitHelp(e, "test", "U1", "login [user] [password]")

	if rep := e.askOn("test", "U1", "login alice "+secret); !isReply(rep) {
		t.Fatalf("login: %s %q", rep.GetType(), rep.GetData())
	}
	if got := svc.last(); len(got) != 3 || got[2] != secret {
		t.Errorf("the service got %q", got)
	}
	if rep := e.askOn("test", "U9", "login alice "+secret); !isError(rep) {
		t.Errorf("denied login: %s %q", rep.GetType(), rep.GetData())
	}
	rep := e.askOn("test", "U1", "rotate token  deploy\t"+secret)
	if strings.Contains(string(rep.GetData()), secret) || !strings.Contains(string(rep.GetData()), "rotate token  deploy\t[redacted]") {
		t.Errorf("confirmation prompt: %q", rep.GetData())
	}
	e.askOn("test", "U1", "yes")
	// A forged event (its platform is not its subject's) is refused and
	// recorded.
	forged := &chatopsv1.Event{Id: "forged-1", From: &chatopsv1.Peer{Id: "U1"}, To: "C1", Data: []byte("login alice " + secret),
		Platform: "slack", Gateway: "gw", ReplyTo: chatopsv1.ReplySubject("test", "gw", "x")}
	if err := e.nc.Publish(chatopsv1.SubjectIn("test"), mustMarshal(t, forged)); err != nil {
		t.Fatal(err)
	}

	recs := readAudit(t, e.nc, func(recs []audit.Record) bool {
		for _, r := range recs {
			if r.RequestID == "forged-1" {
				return true
			}
		}
		return false
	})
	want := map[string]string{
		audit.StatusOK:       "login alice [redacted]",
		audit.StatusDenied:   "login alice [redacted]",
		audit.StatusConfirm:  "rotate token  deploy\t[redacted]",
		audit.StatusRejected: "login alice [redacted]",
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if strings.Contains(r.Text, secret) || strings.Contains(r.Error, secret) {
			t.Errorf("audit record holds the secret: %+v", r)
		}
		if w, ok := want[r.Status]; ok && strings.HasPrefix(r.Text, strings.Fields(w)[0]) {
			seen[r.Status] = true
			if r.Text != w {
				t.Errorf("%s record text %q, want %q", r.Status, r.Text, w)
			}
			if r.User != "U1" && r.User != "U9" || r.Platform == "" || r.Channel != "C1" || r.Command == "" && r.Status != audit.StatusRejected {
				t.Errorf("%s record lost who, where or what: %+v", r.Status, r)
			}
		}
	}
	for status := range want {
		if !seen[status] {
			t.Errorf("no %s record", status)
		}
	}
	if strings.Contains(log.String(), secret) {
		t.Errorf("the router's log holds the secret:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "login alice [redacted]") {
		t.Errorf("the router's log has no redacted audit line:\n%s", log.String())
	}
}

// readAudit reads the audit stream until done says it has what it needs.
func readAudit(t *testing.T, nc *nats.Conn, done func([]audit.Record) bool) []audit.Record {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var cons jetstream.Consumer
	waitFor(t, func() bool {
		cons, err = js.OrderedConsumer(ctx, audit.Stream, jetstream.OrderedConsumerConfig{})
		return err == nil
	})
	var recs []audit.Record
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !done(recs) {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
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
	if !done(recs) {
		t.Fatalf("audit stream: %d records, not the ones wanted", len(recs))
	}
	return recs
}
