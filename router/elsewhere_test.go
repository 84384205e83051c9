package router_test

import (
	"context"
	"strings"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"
)

// from is a user in a conversation of a platform, as its gateway sends.
type from struct {
	platform, user, name, conv string
}

// askFrom sends text as f, times times (the same event: what a router
// handed a message again sees), and returns the first answer.
func (e *env) askFrom(f from, text string, times int) *chatopsv1.Event {
	e.t.Helper()
	reply := chatopsv1.ReplySubject(f.platform, "gw", nuid.Next())
	sub, err := e.nc.SubscribeSync(reply)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ev := &chatopsv1.Event{Id: nuid.Next(), Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, From: &chatopsv1.Peer{Id: f.user, Name: f.name}, To: f.conv,
		Data: []byte(text), Platform: f.platform, Gateway: "gw", ReplyTo: reply, Meta: map[string]string{"irc.target": f.conv}}
	for range times {
		if err := e.nc.Publish(chatopsv1.SubjectIn(f.platform), mustMarshal(e.t, ev)); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.await(sub, 15*time.Second)
}

// outbound returns what the reply stream of platform holds on its
// outbound path, waiting up to d for want messages (and a moment more for
// any extra).
func (e *env) outbound(platform string, want int, d time.Duration) []*chatopsv1.Event {
	e.t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got []*chatopsv1.Event
	for ctx.Err() == nil {
		got = got[:0]
		c, err := js.OrderedConsumer(ctx, durable.ReplyStream(platform), jetstream.OrderedConsumerConfig{FilterSubjects: []string{chatopsv1.SubjectOutPrefix + platform + ".*.*" + durable.OutboundSuffix}})
		if err == nil {
			for {
				m, err := c.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
				if err != nil {
					break
				}
				ev := &chatopsv1.Event{}
				if err := proto.Unmarshal(m.Data(), ev); err != nil {
					e.t.Fatalf("outbound message on %s does not decode: %v", m.Subject(), err)
				}
				got = append(got, ev)
			}
		}
		if len(got) >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return got
}

// gatewaysRan makes the platforms' shared outbound consumers, as their
// gateways' first requests to the routers do: a platform no gateway has
// served is refused by tell and mail.
func (e *env) gatewaysRan(platforms ...string) {
	e.t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range platforms {
		if _, err := durable.EnsureReplyStream(ctx, js, p, 1); err != nil {
			e.t.Fatalf("reply stream of %s: %v", p, err)
		}
		if _, err := durable.EnsureOutboundConsumer(ctx, js, p, "gw", durable.KeepOutboundShared); err != nil {
			e.t.Fatalf("outbound consumer of %s: %v", p, err)
		}
	}
}

var alice = from{platform: "irc", user: "account:alice", name: "alice", conv: "#dev"}

// tell from IRC runs the command as its author and stores its result once
// on Slack's outbound path, for #ops, saying who asked from where; the
// asker is told where it went.
func TestTellPostsElsewhereOnce(t *testing.T) {
	e := newEnv(t, router.Config{})
	e.serve("echo", echo.Handler{})
	waitHelp(e, "irc", "account:alice", "echo")
	e.gatewaysRan("slack", "xmpp")

	// Twice, as a router handed the message again would run it.
	rep := e.askFrom(alice, "tell slack:#Ops echo hi there", 2)
	if !isReply(rep) || string(rep.GetData()) != "told slack:#ops" {
		t.Fatalf("tell: %s %q, want reply \"told slack:#ops\"", rep.GetType(), rep.GetData())
	}
	got := e.outbound("slack", 1, 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("slack's outbound path holds %d messages, want 1: %v", len(got), got)
	}
	ev := got[0]
	want := "alice (irc:#dev) asked: echo hi there\nhi there"
	if ev.GetTo() != "#ops" || ev.GetPlatform() != "slack" || string(ev.GetData()) != want || ev.GetType() != chatopsv1.EventType_EVENT_TYPE_REPLY {
		t.Errorf("posted %s to %q on %q: %q, want a reply to #ops on slack: %q", ev.GetType(), ev.GetTo(), ev.GetPlatform(), ev.GetData(), want)
	}
	if len(ev.GetMeta()) != 0 {
		t.Errorf("the asker's meta went along: %v", ev.GetMeta())
	}

	// An XMPP room is written with ?join and posted as a group chat.
	if rep := e.askFrom(alice, "tell xmpp:ops@conference.example.org?join echo hi", 1); string(rep.GetData()) != "told xmpp:ops@conference.example.org?join" {
		t.Errorf("tell xmpp room: %q", rep.GetData())
	}
	x := e.outbound("xmpp", 1, 5*time.Second)
	if len(x) != 1 || x[0].GetTo() != "ops@conference.example.org" || x[0].GetMeta()["xmpp.type"] != "groupchat" {
		t.Errorf("xmpp room: %v", x)
	}
}

// What tell refuses, and that a refusal posts nothing.
func TestTellRefuses(t *testing.T) {
	p, err := policy.Parse([]byte(`
default: allow
rules:
  - name: no telling slack from irc
    commands: ["tell slack"]
    platforms: [irc]
    effect: deny
  - name: no time
    commands: ["time"]
    effect: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, router.Config{Policy: p})
	e.serve("echo", echo.Handler{})
	waitHelp(e, "irc", "account:alice", "echo")
	e.gatewaysRan("slack", "xmpp")
	for _, tc := range []struct{ name, text, want string }{
		{"web", "tell web:abc echo hi", "tell cannot post to web: its conversations live in one gateway process"},
		{"shell", "tell shell:x echo hi", "tell cannot post to shell"},
		{"malformed", "tell ops echo hi", `"ops" is not a conversation: write PLATFORM:CONVERSATION`},
		{"unknown platform", "tell teams:#ops echo hi", `tell cannot post to "teams": it posts to slack, xmpp, irc`},
		{"bad slack channel", "tell slack:#no!such echo hi", "is not a Slack channel"},
		{"bad xmpp", "tell xmpp:ops echo hi", "is not an XMPP address"},
		{"no command", "tell xmpp:ops@example.org", "usage: tell CONVERSATION COMMAND"},
		{"unknown command", "tell xmpp:ops@example.org nosuch thing", "nothing sent: "},
		{"nested", "tell xmpp:ops@example.org tell irc:#x echo hi", "tell runs one command and sends its result: it cannot run tell"},
		{"schedule", "tell xmpp:ops@example.org in 1m echo hi", "it cannot run in"},
		{"inner denied", "tell xmpp:ops@example.org time", `nothing sent: you may not run "time" here (policy: no time)`},
		{"policy", "tell slack:#ops echo hi", `you may not run "tell slack" here (policy: no telling slack from irc)`},
		{"mail platform", "tell mail:bob@example.com echo hi", "use mail ADDRESS COMMAND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := e.askFrom(alice, tc.text, 1)
			if rep.GetType() != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.Contains(string(rep.GetData()), tc.want) {
				t.Errorf("%q: %s %q, want an error with %q", tc.text, rep.GetType(), rep.GetData(), tc.want)
			}
		})
	}
	// From another platform the same tell is allowed: the rule is about
	// IRC's users.
	bob := from{platform: "xmpp", user: "bob@example.org", name: "bob", conv: "bob@example.org"}
	if rep := e.askFrom(bob, "tell slack:C0123ABCD echo hi", 1); string(rep.GetData()) != "told slack:C0123ABCD" {
		t.Errorf("tell from xmpp: %s %q", rep.GetType(), rep.GetData())
	}
	for _, p := range []string{"slack", "xmpp"} {
		got := e.outbound(p, 0, time.Second)
		if p == "slack" && (len(got) != 1 || got[0].GetTo() != "C0123ABCD") {
			t.Errorf("slack holds %v, want the one allowed tell to C0123ABCD", got)
		}
		if p == "xmpp" && len(got) != 0 {
			t.Errorf("a refused tell posted to xmpp: %v", got)
		}
	}
}

// mail stores the result on the mail platform's outbound path, for the
// address, with a subject; the domain list and the address are checked.
func TestMailStoresForTheMailOutput(t *testing.T) {
	e := newEnv(t, router.Config{MailDomains: "example.com, Example.org"})
	e.serve("echo", echo.Handler{})
	waitHelp(e, "irc", "account:alice", "echo")
	e.gatewaysRan(router.MailPlatform)

	rep := e.askFrom(alice, "mail Ops@Sub.Example.COM echo Grüße, 東京 ✓", 1)
	if want := "mailing the result of `echo Grüße, 東京 ✓` to Ops@sub.example.com"; !isReply(rep) || string(rep.GetData()) != want {
		t.Fatalf("mail: %s %q, want %q", rep.GetType(), rep.GetData(), want)
	}
	got := e.outbound(router.MailPlatform, 1, 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("the mail path holds %d messages, want 1", len(got))
	}
	m := got[0]
	if m.GetTo() != "Ops@sub.example.com" || m.GetMeta()["mail.subject"] != "botmesh: echo Grüße, 東京 ✓" || string(m.GetData()) != "alice (irc:#dev) asked: echo Grüße, 東京 ✓\nGrüße, 東京 ✓" {
		t.Errorf("mail to %q, meta %v: %q", m.GetTo(), m.GetMeta(), m.GetData())
	}

	for _, tc := range []struct{ text, want string }{
		{"mail bob@evil.org echo hi", "mail does not go to evil.org: the mail domains are example.com, example.org"},
		{"mail bob@notexample.com echo hi", "mail does not go to notexample.com"},
		{"mail not-an-address echo hi", `"not-an-address" is not a mail address: write user@example.com`},
		{"mail a@b@example.com echo hi", "is not a mail address"},
		{"mail bob@[127.0.0.1] echo hi", "is not a mail address"},
		{"mail bob@example.com", "usage: mail ADDRESS COMMAND"},
	} {
		rep := e.askFrom(alice, tc.text, 1)
		if rep.GetType() != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.Contains(string(rep.GetData()), tc.want) {
			t.Errorf("%q: %s %q, want an error with %q", tc.text, rep.GetType(), rep.GetData(), tc.want)
		}
	}
	if got := e.outbound(router.MailPlatform, 2, time.Second); len(got) != 1 {
		t.Errorf("refused mails were stored: %d messages", len(got))
	}
}

// A result for a platform no gateway has served would wait unseen until
// the stream drops it: tell and mail refuse it, and post once a gateway of
// the platform (a mail output) has run.
func TestElsewhereNeedsAGateway(t *testing.T) {
	e := newEnv(t, router.Config{})
	e.serve("echo", echo.Handler{})
	waitHelp(e, "irc", "account:alice", "echo")
	for _, tc := range []struct{ text, want string }{
		{"tell slack:#ops echo hi", "nothing sent: no slack gateway has run on this mesh, so nothing would post to slack:#ops"},
		{"mail ops@example.com echo hi", "nothing sent: no mail output has run on this mesh, so the mail would never be sent: start one (BOTMESH_SMTP_URL"},
	} {
		rep := e.askFrom(alice, tc.text, 1)
		if rep.GetType() != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.Contains(string(rep.GetData()), tc.want) {
			t.Errorf("%q: %s %q, want an error with %q", tc.text, rep.GetType(), rep.GetData(), tc.want)
		}
	}
	if got := e.outbound("slack", 1, time.Second); len(got) != 0 {
		t.Errorf("a refused tell was stored: %v", got)
	}
	e.gatewaysRan("slack", router.MailPlatform)
	if rep := e.askFrom(alice, "tell slack:#ops echo hi", 1); string(rep.GetData()) != "told slack:#ops" {
		t.Errorf("tell once slack has a gateway: %s %q", rep.GetType(), rep.GetData())
	}
	if rep := e.askFrom(alice, "mail ops@example.com echo hi", 1); !isReply(rep) {
		t.Errorf("mail once a mail output ran: %s %q", rep.GetType(), rep.GetData())
	}
}

// help lists tell and mail, and help mail shows an example.
func TestHelpTellMail(t *testing.T) {
	e := newEnv(t, router.Config{})
	help := string(e.ask("help").GetData())
	for _, w := range []string{"mail [address] [command] - Runs [command] and mails its result to [address]", "tell [conversation] [command] - Runs [command] and posts its result in [conversation]"} {
		if !strings.Contains(help, w) {
			t.Errorf("help lacks %q:\n%s", w, help)
		}
	}
	if i, j := strings.Index(help, "mail ["), strings.Index(help, "ping"); i < 0 || j < 0 || i > j {
		t.Errorf("help is not alphabetical around mail:\n%s", help)
	}
	if got := string(e.ask("help mail").GetData()); !strings.Contains(got, "Example: mail ops@example.com health greeter") {
		t.Errorf("help mail: %q", got)
	}
}

// Without JetStream delivery there is no outbound path: tell says so.
func TestTellNeedsJetStream(t *testing.T) {
	e := newEnv(t, router.Config{Delivery: durable.Core})
	rep := e.askFrom(alice, "tell slack:#ops ping", 1)
	if !strings.Contains(string(rep.GetData()), "tell is not available: it needs the routers' reply streams") {
		t.Errorf("core delivery: %s %q", rep.GetType(), rep.GetData())
	}
}

// A schedule may run tell or mail: each run stores its own result on the
// target's outbound path (every 1s three times: three mails), and the
// conversation where it was set is told what each run did. What tell or
// mail would refuse is refused when the schedule is set.
func TestScheduleElsewhere(t *testing.T) {
	e := newEnv(t, router.Config{MailDomains: "example.com"})
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "echo [text]") })
	c := e.chat("U1", "C1")
	for _, tc := range []struct{ text, want string }{
		{"every 1s mail ops@example.com echo daily", "no mail output has run on this mesh"},
		{"in 1m mail ops@evil.org echo hi", "mail does not go to evil.org"},
		{"in 1m tell web:abc echo hi", "tell cannot post to web"},
		{"in 1m tell slack:#ops", "needs a target and a command"},
		{"in 1m tell slack:#ops in 1s echo hi", "tell runs one command and sends its result: it cannot run in"},
	} {
		if rep := c.say(tc.text); rep.GetType() != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.Contains(string(rep.GetData()), tc.want) {
			t.Errorf("%q: %s %q, want an error with %q", tc.text, rep.GetType(), rep.GetData(), tc.want)
		}
	}
	e.gatewaysRan(router.MailPlatform, "slack")
	if rep := c.say("in 1m tell slack:#ops nosuch thing"); rep.GetType() != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.Contains(string(rep.GetData()), `nothing scheduled: unknown command "nosuch thing"`) {
		t.Errorf("an unknown command after tell: %s %q", rep.GetType(), rep.GetData())
	}

	id := c.set("every 1s mail ops@example.com echo daily")
	rep := c.firstFired(15 * time.Second)
	if want := "schedule " + id + " (every 1s: `mail ops@example.com echo daily`):\nmailing the result of `echo daily` to ops@example.com"; string(rep.GetData()) != want {
		t.Errorf("what the conversation is told: %s %q, want %q", rep.GetType(), rep.GetData(), want)
	}
	mails := e.outbound(router.MailPlatform, 3, 15*time.Second)
	if rep := c.say("unschedule " + id); !strings.Contains(string(rep.GetData()), "removed schedule "+id) {
		t.Errorf("unschedule: %q", rep.GetData())
	}
	if len(mails) < 3 {
		t.Fatalf("%d mails stored by the schedule within 15s, want 3 or more", len(mails))
	}
	seen := map[string]bool{}
	for _, m := range mails {
		if m.GetTo() != "ops@example.com" || !strings.HasSuffix(string(m.GetData()), "\ndaily") {
			t.Errorf("a scheduled mail: to %q: %q", m.GetTo(), m.GetData())
		}
		if seen[m.GetId()] {
			t.Errorf("two runs stored one id %q: a later run would be dropped as a duplicate", m.GetId())
		}
		seen[m.GetId()] = true
	}

	c.set("in 1s tell slack:#ops echo from a schedule")
	if got := e.outbound("slack", 1, 15*time.Second); len(got) != 1 || got[0].GetTo() != "#ops" || !strings.HasSuffix(string(got[0].GetData()), "\nfrom a schedule") {
		t.Errorf("in 1s tell slack:#ops: %v", got)
	}
}
