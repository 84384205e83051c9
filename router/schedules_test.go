package router_test

import (
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"
)

// chat is one user in one conversation, on a gateway instance of its own
// that sees every reply to that instance: the answers to what it sends
// and the results of the schedules it sets.
type chat struct {
	e        *env
	user, to string
	instance string
	sub      *nats.Subscription
	// early holds scheduled results that came while say waited for an
	// answer.
	early []*chatopsv1.Event
	// outbound reads the chat's outbound messages from the reply stream.
	outbound jetstream.Consumer
}

func (e *env) chat(user, to string) *chat {
	e.t.Helper()
	c := &chat{e: e, user: user, to: to, instance: nuid.Next()}
	sub, err := e.nc.SubscribeSync(chatopsv1.SubjectOut("test", c.instance))
	if err != nil {
		e.t.Fatal(err)
	}
	c.sub = sub
	return c
}

// say sends text and returns the answer to it (skipping progress notes).
func (c *chat) say(text string) *chatopsv1.Event {
	c.e.t.Helper()
	token := "m" + nuid.Next()
	ev := &chatopsv1.Event{
		Id: nuid.Next(), Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE,
		From: &chatopsv1.Peer{Id: c.user, Name: strings.ToLower(c.user)}, To: c.to, Thread: "T1",
		Data: []byte(text), Platform: "test", Gateway: "testgw", ReplyTo: chatopsv1.ReplySubject("test", c.instance, token),
	}
	if err := c.e.nc.Publish(chatopsv1.SubjectIn("test"), mustMarshal(c.e.t, ev)); err != nil {
		c.e.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := c.sub.NextMsg(time.Until(deadline))
		if err != nil {
			c.e.t.Fatalf("no answer to %q: %v", text, err)
		}
		if strings.HasSuffix(m.Subject, "."+token) {
			return decode(c.e.t, m)
		}
		if !strings.HasSuffix(m.Subject, ".p") {
			c.early = append(c.early, decode(c.e.t, m))
		}
	}
}

// fired collects the scheduled results that reach the conversation within
// d (final replies with a token the chat did not send).
func (c *chat) fired(d time.Duration) []*chatopsv1.Event {
	c.e.t.Helper()
	got := c.early
	c.early = nil
	deadline := time.Now().Add(d)
	for {
		m, err := c.sub.NextMsg(time.Until(deadline))
		if err != nil {
			return got
		}
		if strings.HasSuffix(m.Subject, ".p") {
			continue
		}
		ev := decode(c.e.t, m)
		// Results take the outbound path: the reply subject and ".o".
		subject, outbound := strings.CutSuffix(m.Subject, durable.OutboundSuffix)
		if token := subject[strings.LastIndexByte(subject, '.')+1:]; !outbound || !strings.HasPrefix(token, "s") || !strings.Contains(token, "-") {
			c.e.t.Errorf("unexpected reply on %s: %q", m.Subject, ev.GetData())
			continue
		}
		got = append(got, ev)
	}
}

// firstFired waits up to d for one scheduled result.
func (c *chat) firstFired(d time.Duration) *chatopsv1.Event {
	c.e.t.Helper()
	if len(c.early) > 0 {
		ev := c.early[0]
		c.early = c.early[1:]
		return ev
	}
	deadline := time.Now().Add(d)
	for {
		m, err := c.sub.NextMsg(time.Until(deadline))
		if err != nil {
			c.e.t.Fatalf("no scheduled result within %s", d)
		}
		if !strings.HasSuffix(m.Subject, ".p") {
			return decode(c.e.t, m)
		}
	}
}

func decode(t *testing.T, m *nats.Msg) *chatopsv1.Event {
	t.Helper()
	ev := &chatopsv1.Event{}
	if err := proto.Unmarshal(m.Data, ev); err != nil {
		t.Fatalf("reply on %s does not decode: %v", m.Subject, err)
	}
	return ev
}

var idPattern = regexp.MustCompile(`^scheduled ([a-z2-7]{8}): `)

// set sends a scheduling command and returns the new schedule's id.
func (c *chat) set(text string) string {
	c.e.t.Helper()
	rep := c.say(text)
	m := idPattern.FindStringSubmatch(string(rep.GetData()))
	if !isReply(rep) || m == nil {
		c.e.t.Fatalf("%q: %s %q, want \"scheduled ID: …\"", text, rep.GetType(), rep.GetData())
	}
	return m[1]
}

// A one-time schedule fires once, as the user who set it, in the
// conversation where it was set, and is then gone.
func TestScheduleIn(t *testing.T) {
	e := newEnv(t, router.Config{})
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "echo [text]") })
	c := e.chat("U1", "C1")
	id := c.set("in 2s echo hi")
	if got := string(c.say("schedules").GetData()); !strings.Contains(got, id) || !strings.Contains(got, "`echo hi`") || !strings.Contains(got, "set by u1") {
		t.Errorf("schedules before it fired:\n%s", got)
	}
	rep := c.firstFired(15 * time.Second)
	if !isReply(rep) || string(rep.GetData()) != "schedule "+id+" (in 2s: `echo hi`):\nhi" {
		t.Errorf("scheduled result: %s %q", rep.GetType(), rep.GetData())
	}
	if rep.GetTo() != "C1" || rep.GetThread() != "T1" || rep.GetPlatform() != "test" || rep.GetGateway() != "testgw" {
		t.Errorf("scheduled result not addressed to the conversation: %+v", rep)
	}
	if more := c.fired(3 * time.Second); len(more) != 0 {
		t.Errorf("a one-time schedule fired again: %q", more[0].GetData())
	}
	if got := string(c.say("schedules").GetData()); !strings.HasPrefix(got, "no schedules here") {
		t.Errorf("schedules after it fired:\n%s", got)
	}
}

// However many routers run, a schedule fires once each time: a one-time
// schedule once, `every 1s` about once a second, not once per router; and
// unschedule stops it.
func TestScheduleOnceWithThreeRouters(t *testing.T) {
	s := meshtest.NATS(t)
	e := newEnvOn(t, s, router.Config{})
	newEnvOn(t, s, router.Config{})
	newEnvOn(t, s, router.Config{})
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "echo [text]") })

	c := e.chat("U1", "C1")
	c.set("in 2s echo once")
	got := c.fired(12 * time.Second)
	if len(got) != 1 {
		t.Fatalf("in 2s with three routers: %d results, want 1", len(got))
	}

	id := c.set("every 1s echo tick")
	set := time.Now()
	time.Sleep(4500 * time.Millisecond)
	if rep := c.say("unschedule " + id); !isReply(rep) || !strings.HasPrefix(string(rep.GetData()), "removed schedule "+id+" (`echo tick` every 1s)") {
		t.Fatalf("unschedule: %s %q", rep.GetType(), rep.GetData())
	}
	t.Logf("unscheduled %s after setting it", time.Since(set).Round(time.Millisecond))
	// Results of what fired before the unschedule may still be on their
	// way: collect them, then nothing more may come.
	ticks := 0
	tokens := map[string]bool{}
	for _, rep := range c.fired(10 * time.Second) {
		if !strings.HasSuffix(string(rep.GetData()), ":\ntick") {
			t.Errorf("result %q", rep.GetData())
		}
		ticks++
		tokens[rep.GetInReplyTo()] = true
	}
	if ticks < 3 || ticks > 6 {
		t.Errorf("every 1s for 4.5s with three routers: %d results, want 3 to 6", ticks)
	}
	if len(tokens) != ticks {
		t.Errorf("%d results for %d firings: some firing answered twice", ticks, len(tokens))
	}
	if more := c.fired(3 * time.Second); len(more) != 0 {
		t.Errorf("%d results after unschedule and a 10s drain", len(more))
	}
	if got := string(c.say("schedules").GetData()); !strings.HasPrefix(got, "no schedules here") {
		t.Errorf("schedules after unschedule:\n%s", got)
	}
}

// schedules lists the conversation's schedules, and only its author may
// remove one.
func TestScheduleListAndUnschedule(t *testing.T) {
	e := newEnv(t, router.Config{})
	ada := e.chat("U1", "C1")
	bob := e.chat("U2", "C1")
	elsewhere := e.chat("U1", "C2")
	in := ada.set("in 1h ping")
	every := bob.set("every 2h time")
	cron := ada.set(`cron "0 0 9 * * 1-5" Europe/Berlin ping`)
	other := elsewhere.set("at 23:59 hello")

	list := string(ada.say("schedules").GetData())
	lines := strings.Split(list, "\n")
	if len(lines) != 4 || lines[0] != "3 schedule(s) here (id, next run, schedule, who set it, command):" {
		t.Fatalf("schedules:\n%s", list)
	}
	// Soonest first; cron's next run is not computed.
	for i, want := range []string{in + "  next 20", every + "  next ≈20", cron + "  next per cron  cron \"0 0 9 * * 1-5\" Europe/Berlin  set by u1  `ping`"} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d: %q, want it to start with %q", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[2], "every 2h  set by u2  `time`") {
		t.Errorf("bob's line: %q", lines[2])
	}
	if strings.Contains(list, other) {
		t.Errorf("another conversation's schedule listed:\n%s", list)
	}

	if rep := bob.say("unschedule " + in); !isError(rep) || !strings.Contains(string(rep.GetData()), "set by someone else") {
		t.Errorf("bob removes ada's schedule: %s %q", rep.GetType(), rep.GetData())
	}
	if rep := ada.say("unschedule " + in); !isReply(rep) || string(rep.GetData()) != "removed schedule "+in+" (`ping` in 1h)" {
		t.Errorf("unschedule: %s %q", rep.GetType(), rep.GetData())
	}
	if rep := ada.say("unschedule " + in); !isError(rep) || !strings.Contains(string(rep.GetData()), "there is no schedule "+in) {
		t.Errorf("unschedule twice: %s %q", rep.GetType(), rep.GetData())
	}
	if rep := ada.say("unschedule nope"); !isError(rep) || !strings.Contains(string(rep.GetData()), `"nope" is not a schedule id`) {
		t.Errorf("unschedule nope: %s %q", rep.GetType(), rep.GetData())
	}
	if got := string(ada.say("schedules").GetData()); strings.Contains(got, in) || !strings.HasPrefix(got, "2 schedule(s)") {
		t.Errorf("schedules after unschedule:\n%s", got)
	}
}

// Bad input and commands that may not be scheduled are refused, and
// nothing is stored.
func TestScheduleRefusals(t *testing.T) {
	pol, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, router.Config{Policy: pol, SchedulesPerUser: 2})
	e.serve("echo", echo.Handler{})
	e.serve("registry-cmd", registryCmd(new(atomic.Int32)))
	c := e.chat("U1", "C1")
	admin := e.chat("UADMIN", "C1")
	waitFor(t, func() bool {
		help := string(admin.say("help").GetData())
		return strings.Contains(help, "deregister service") && strings.Contains(help, "echo [text]")
	})
	for _, tc := range []struct {
		c          *chat
		text, want string
	}{
		{c, "in 500ms echo hi", "the delay 500ms is too short: the shortest is 1s"},
		{c, "every 0s echo hi", "too short"},
		{c, "in 1m ehco hi", `nothing scheduled: unknown command "ehco". Did you mean "echo"?`},
		{c, "at 2020-01-01 10:00 ping", "2020-01-01 10:00 UTC has passed: a schedule must be in the future"},
		{c, "at 17:30 Mars/Olympus ping", `"Mars/Olympus" is not a time zone`},
		{c, `cron "0 30 9 * *" ping`, "it has 5 fields"},
		{c, `cron "99 0 9 * * *" ping`, "nats-server does not accept cron \"99 0 9 * * *\" UTC"},
		{c, "in 1m deregister service x", `you may not run "deregister service" here (policy: registry changes are for admins), so you may not schedule it`},
		{admin, "in 1m deregister service x", `"deregister service" needs a confirmation each time it runs, so it cannot be scheduled`},
		{c, "in 1m yes", "a confirmation cannot be scheduled"},
		{c, "every 1m in 1m ping", "a schedule cannot set or change schedules"},
	} {
		rep := tc.c.say(tc.text)
		if !isError(rep) || !strings.Contains(string(rep.GetData()), tc.want) {
			t.Errorf("%q: %s %q, want an error with %q", tc.text, rep.GetType(), rep.GetData(), tc.want)
		}
	}
	if got := string(c.say("schedules").GetData()); !strings.HasPrefix(got, "no schedules here") {
		t.Errorf("refused schedules were stored:\n%s", got)
	}
	c.set("in 1h ping")
	e.chat("U1", "C2").set("in 1h ping") // the limit is per user, in every conversation
	if rep := c.say("in 1h ping"); !isError(rep) || !strings.Contains(string(rep.GetData()), "you have 2 schedules, the most one user may have") {
		t.Errorf("third schedule: %s %q", rep.GetType(), rep.GetData())
	}
	admin.set("in 1h ping") // another user has a limit of their own
}

// A message that reaches the routers twice (a gateway's retry, a
// redelivery) sets its schedule once.
func TestScheduleSetTwice(t *testing.T) {
	e := newEnv(t, router.Config{})
	c := e.chat("U1", "C1")
	ev := &chatopsv1.Event{
		Id: nuid.Next(), Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, From: &chatopsv1.Peer{Id: "U1"}, To: "C1",
		Data: []byte("in 1h ping"), Platform: "test", Gateway: "testgw", ReplyTo: chatopsv1.ReplySubject("test", c.instance, "again"),
	}
	for i := range 2 {
		if err := e.nc.Publish(chatopsv1.SubjectIn("test"), mustMarshal(t, ev)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if rep := c.firstFired(10 * time.Second); !idPattern.MatchString(string(rep.GetData())) {
				t.Fatalf("in 1h ping: %q", rep.GetData())
			}
		}
	}
	// (The second copy is not answered: it was, already.)
	if more := c.fired(3 * time.Second); len(more) != 0 {
		t.Errorf("the second copy answered: %q", more[0].GetData())
	}
	if got := string(c.say("schedules").GetData()); !strings.HasPrefix(got, "1 schedule(s) here") {
		t.Errorf("the same message twice:\n%s", got)
	}
}

// Where the gateways would not post a result, schedules are refused.
func TestSchedulePlatforms(t *testing.T) {
	e := newEnv(t, router.Config{SchedulePlatforms: "slack, irc"})
	c := e.chat("U1", "C1")
	if rep := c.say("in 1m ping"); !isError(rep) || string(rep.GetData()) != "schedules are not available on test yet: its gateway would not post the results (they are on slack, irc)" {
		t.Errorf("in 1m ping on test: %s %q", rep.GetType(), rep.GetData())
	}
	if help := string(c.say("help").GetData()); strings.Contains(help, "every") || strings.Contains(help, "schedules") {
		t.Errorf("help lists the scheduling commands where they are not available:\n%s", help)
	}
}

// The policy is checked again when a schedule fires: a user who lost the
// right is told, and the repeating schedule is removed. The schedule
// outlives the router that set it.
func TestSchedulePolicyAtFire(t *testing.T) {
	s := meshtest.NATS(t)
	first := newEnvOn(t, s, router.Config{})
	c := first.chat("U1", "C1")
	id := c.set("every 2s ping")
	first.stopRouter()

	pol, err := policy.Parse([]byte("default: allow\nrules:\n  - name: no more pings\n    commands: [ping]\n    users: [\"test:U1\"]\n    effect: deny\n"))
	if err != nil {
		t.Fatal(err)
	}
	second := newEnvOn(t, s, router.Config{Policy: pol})
	rep := c.firstFired(15 * time.Second)
	want := "schedule " + id + " (every 2s: `ping`): you may no longer run \"ping\" here (policy: no more pings), so the schedule is removed"
	if !isError(rep) || string(rep.GetData()) != want {
		t.Errorf("fired after the right was lost: %s %q, want %q", rep.GetType(), rep.GetData(), want)
	}
	// At most one more (fired before the removal); then none.
	if more := c.fired(6 * time.Second); len(more) > 1 {
		t.Errorf("%d more results after the schedule was removed", len(more))
	}
	c.e = second
	if got := string(c.say("schedules").GetData()); !strings.HasPrefix(got, "no schedules here") {
		t.Errorf("schedules after the removal:\n%s", got)
	}
}
