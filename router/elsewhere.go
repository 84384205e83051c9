package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/parse"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Output elsewhere: "tell CONVERSATION COMMAND" runs COMMAND as its author
// and posts the result in another conversation, of any platform whose
// conversations any gateway can post to (Slack, XMPP, IRC); "mail ADDRESS
// COMMAND" mails it. Both take the outbound path (sdk/durable/outbound.go)
// that schedules and watches take: the result is stored in the target
// platform's reply stream, on
//
//	bot.v1.out.<platform>.<tell|mail>.<token>.o
//
// (the token derived from the asking message's reply subject, so that a
// message a router is handed again stores the same result, once), and any
// live gateway of that platform posts it; for mail that is a gateway
// running the mail output (gateway/adapter/mail), which keeps the SMTP
// server and its password out of the routers and acknowledges a mail only
// once the server took it. The asker is told where it went.
//
// Policies name these commands "tell PLATFORM" ("tell slack") and "mail
// DOMAIN" ("mail example.com"), asked about the author in the asking
// conversation; the command itself is then checked as if it were run there.

// Command words.
const (
	cmdTell = "tell"
	cmdMail = "mail"
)

// MailPlatform is the platform of the outbound path that mails.
const MailPlatform = "mail"

// metaMailSubject is the mail output's meta key of the subject
// (gateway/adapter/mail.MetaSubject).
const metaMailSubject = "mail.subject"

// metaXMPPType is the XMPP gateway's meta key of the message type
// (gateway/adapter/xmpp.MetaType): "groupchat" posts to a room.
const metaXMPPType = "xmpp.type"

// elsewhereHelp are help's entries for tell and mail.
func elsewhereHelp() []helpEntry {
	m := newEntry(cmdMail, "mail ADDRESS COMMAND", "Runs COMMAND and mails its result to ADDRESS")
	m.more = []string{"Example: mail ops@example.com health greeter"}
	t := newEntry(cmdTell, "tell CONVERSATION COMMAND", "Runs COMMAND and posts its result in CONVERSATION (slack:#ops, irc:#dev, xmpp:ops@conference.example.org?join)")
	t.more = []string{"Example: tell slack:#ops health greeter"}
	return []helpEntry{m, t}
}

// isElsewhere reports whether word is tell or mail.
func isElsewhere(word string) bool {
	return strings.EqualFold(word, cmdTell) || strings.EqualFold(word, cmdMail)
}

// Conversation is where tell posts.
type Conversation struct {
	// Platform is the gateway platform ("slack").
	Platform string
	// ID is the conversation as that platform's gateway posts to it
	// (Event.to): a Slack channel id or #name, an IRC #channel or nick,
	// an XMPP JID.
	ID string
	// Room is set for an XMPP multi-user chat room (written
	// room@conference.example.org?join).
	Room bool
}

// String is the conversation as a user writes it.
func (c Conversation) String() string {
	s := c.Platform + ":" + c.ID
	if c.Room {
		s += "?join"
	}
	return s
}

// Ids hold no white space and no control characters, Unicode's included
// (\p{Cc} and \p{Z} beside RE2's ASCII \s): a C1 control or a no-break
// space in a conversation's name is a typo or an attack, never a name.
var (
	platformWord  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	slackChannel  = regexp.MustCompile(`^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,20})$`)
	ircTarget     = regexp.MustCompile(`^([#&+!][^\s,:\p{Cc}\p{Z}]{1,49}|[A-Za-z\[\]\\` + "`" + `_^{|}][A-Za-z0-9\[\]\\` + "`" + `_^{|}-]{0,29})$`)
	xmppJID       = regexp.MustCompile(`^[^\s@/"&'<>:\p{Cc}\p{Z}]{1,255}@[a-zA-Z0-9.-]{1,253}$`)
	genericTarget = regexp.MustCompile(`^[^\s\p{Cc}\p{Z}]{1,200}$`)
)

// ParseConversation reads CONVERSATION of tell, PLATFORM:ID, and says in a
// sentence what is wrong with one it cannot read. It does not know which
// platforms run: see Router.tellTarget.
func ParseConversation(s string) (Conversation, error) {
	platform, id, ok := strings.Cut(s, ":")
	platform = strings.ToLower(platform)
	if !ok || id == "" || !platformWord.MatchString(platform) {
		return Conversation{}, fmt.Errorf("%q is not a conversation: write PLATFORM:CONVERSATION, e.g. slack:#ops, irc:#dev or xmpp:ops@conference.example.org?join", truncate(s, 80))
	}
	c := Conversation{Platform: platform, ID: id}
	switch platform {
	case "slack":
		if strings.HasPrefix(id, "#") {
			c.ID = strings.ToLower(id)
		}
		if !slackChannel.MatchString(c.ID) {
			return Conversation{}, fmt.Errorf("%q is not a Slack channel: write slack:#name or slack:C0123ABCD (its id)", truncate(s, 80))
		}
	case "irc":
		if !ircTarget.MatchString(id) {
			return Conversation{}, fmt.Errorf("%q is not an IRC channel or nick: write irc:#channel or irc:nick", truncate(s, 80))
		}
	case "xmpp":
		c.ID, c.Room = strings.CutSuffix(id, "?join")
		if !xmppJID.MatchString(c.ID) {
			return Conversation{}, fmt.Errorf("%q is not an XMPP address: write xmpp:user@example.org, or xmpp:room@conference.example.org?join for a room", truncate(s, 80))
		}
	default:
		if !genericTarget.MatchString(id) {
			return Conversation{}, fmt.Errorf("%q is not a conversation: the part after %s: is empty or has spaces", truncate(s, 80), platform)
		}
	}
	return c, nil
}

// mailDomain is a domain name of a mail address (no address literal).
var mailDomain = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseMailAddress reads ADDRESS of mail: a bare address
// (alice@example.com), also as <alice@example.com>, mailto:alice@example.com
// or as Slack shows a typed one (<mailto:alice@example.com|alice@example.com>).
// It returns the address with its domain lower-cased, and the domain, or
// says in a sentence what is wrong.
func ParseMailAddress(s string) (addr, domain string, err error) {
	bad := fmt.Errorf("%q is not a mail address: write user@example.com", truncate(s, 80))
	in := s
	if rest, ok := strings.CutPrefix(in, "<mailto:"); ok {
		// Slack's link form: the text after | is what the user typed.
		if _, shown, ok := strings.Cut(rest, "|"); ok {
			in = strings.TrimSuffix(shown, ">")
		} else {
			in = "<" + rest
		}
	}
	in = strings.TrimPrefix(in, "mailto:")
	if strings.HasPrefix(in, "<") && strings.HasSuffix(in, ">") {
		in = in[1 : len(in)-1]
	}
	if in == "" || len(in) > 254 || strings.ContainsAny(in, " <>\"\\,;") {
		return "", "", bad
	}
	a, perr := mail.ParseAddress(in)
	if perr != nil || a.Name != "" || a.Address != in {
		return "", "", bad
	}
	local, dom, ok := strings.Cut(in, "@")
	dom = strings.ToLower(dom)
	if !ok || local == "" || len(local) > 64 || !mailDomain.MatchString(dom) {
		return "", "", bad
	}
	return local + "@" + dom, dom, nil
}

// mailDomains returns the domains mail may go to; none means any.
func (r *Router) mailDomains() []string {
	var ds []string
	for _, d := range strings.Split(r.cfg.MailDomains, ",") {
		if d = strings.Trim(strings.ToLower(strings.TrimSpace(d)), "."); d != "" {
			ds = append(ds, d)
		}
	}
	return ds
}

// mailAllowed reports whether mail may go to domain: it is one of the
// allowed domains or under one.
func (r *Router) mailAllowed(domain string) bool {
	ds := r.mailDomains()
	return len(ds) == 0 || slices.ContainsFunc(ds, func(d string) bool {
		return domain == d || strings.HasSuffix(domain, "."+d)
	})
}

// tellPlatforms returns the platforms tell may post to.
func (r *Router) tellPlatforms() []string {
	var ps []string
	for _, p := range strings.Split(r.cfg.TellPlatforms, ",") {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// elsewhereTarget is where a tell or a mail goes.
type elsewhereTarget struct {
	platform string // of the outbound path
	to       string // Event.to there
	shown    string // as the asker is told
	policy   string // the name policies give the request
	meta     map[string]string
}

// target reads the second word of tell or mail, and refuses one that may
// not be posted to, with a sentence.
func (r *Router) target(verb, word string) (elsewhereTarget, string) {
	if verb == cmdMail {
		addr, domain, err := ParseMailAddress(word)
		if err != nil {
			return elsewhereTarget{}, err.Error()
		}
		if !r.mailAllowed(domain) {
			return elsewhereTarget{}, fmt.Sprintf("mail does not go to %s: the mail domains are %s", domain, strings.Join(r.mailDomains(), ", "))
		}
		return elsewhereTarget{platform: MailPlatform, to: addr, shown: addr, policy: cmdMail + " " + domain}, ""
	}
	c, err := ParseConversation(word)
	if err != nil {
		return elsewhereTarget{}, err.Error()
	}
	allowed := r.tellPlatforms()
	switch {
	case c.Platform == MailPlatform:
		return elsewhereTarget{}, "to mail a result, use mail ADDRESS COMMAND"
	case !slices.Contains(allowed, c.Platform) && slices.Contains([]string{"web", "shell", "cli"}, c.Platform):
		return elsewhereTarget{}, fmt.Sprintf("tell cannot post to %s: its conversations live in one gateway process (a browser tab, a terminal), which nothing else can address. Tell goes to %s", c.Platform, strings.Join(allowed, ", "))
	case !slices.Contains(allowed, c.Platform):
		return elsewhereTarget{}, fmt.Sprintf("tell cannot post to %q: it posts to %s", c.Platform, strings.Join(allowed, ", "))
	}
	t := elsewhereTarget{platform: c.Platform, to: c.ID, shown: c.String(), policy: cmdTell + " " + c.Platform}
	if c.Platform == "xmpp" && c.Room {
		t.meta = map[string]string{metaXMPPType: "groupchat"}
	}
	return t, ""
}

// elsewhere answers tell and mail: it runs the command as ev's author and
// stores its result on the target's outbound path.
func (r *Router) elsewhere(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, out *outcome, confirmed bool) *chatopsv1.Event {
	verb := strings.ToLower(msg.Words[0])
	out.command = verb
	out.status = audit.StatusRejected
	// The audit record shows the command once its secrets are known
	// (below); until then, not at all.
	out.text = strings.Join(msg.Words[:min(2, len(msg.Words))], " ") + " …"
	if len(msg.Words) < 3 {
		if verb == cmdMail {
			return r.errorReply(ev, "usage: mail ADDRESS COMMAND, e.g. mail ops@example.com health greeter")
		}
		return r.errorReply(ev, "usage: tell CONVERSATION COMMAND, e.g. tell slack:#ops health greeter")
	}
	t, refusal := r.target(verb, msg.Words[1])
	if refusal != "" {
		return r.errorReply(ev, refusal)
	}
	out.name = t.policy
	d := r.decide(ev, t.policy)
	out.rule = d.Rule
	if !d.Allowed {
		out.status = audit.StatusDenied
		return r.errorReply(ev, fmt.Sprintf("you may not run %q here (policy: %s). Ask an admin if you need it.", t.policy, d.Rule))
	}
	if d.Confirm && out.scheduled {
		return r.errorReply(ev, fmt.Sprintf("%q needs a confirmation now, so it does not run on a schedule", t.policy))
	}
	if d.Confirm && !confirmed {
		return r.askConfirmation(ctx, ev, msg.Text, t.policy, out)
	}
	if r.js == nil {
		out.status = audit.StatusError
		return r.errorReply(ev, verb+" is not available: it needs the routers' reply streams (JetStream, --delivery jetstream)")
	}

	if why := r.unserved(ctx, t); why != "" {
		out.status = audit.StatusRejected
		return r.errorReply(ev, "nothing sent: "+why)
	}

	// The command, run as its author where they asked.
	sub := proto.Clone(ev).(*chatopsv1.Event)
	sub.Data = []byte(parse.AfterWords(msg.Text, 2))
	start := r.now()
	inner := outcome{elsewhere: verb}
	rep := r.handle(ctx, sub, &inner, false)
	r.recordAudit(sub, inner, start)
	switch inner.status {
	case audit.StatusDenied, audit.StatusRejected, audit.StatusUnknown, audit.StatusConfirm:
		out.status = inner.status
		return r.errorReply(ev, "nothing sent: "+string(rep.GetData()))
	}
	shown := cmp.Or(inner.text, string(sub.GetData()))
	out.text = msg.Words[0] + " " + msg.Words[1] + " " + shown

	who := cmp.Or(ev.GetFrom().GetName(), ev.GetFrom().GetId())
	text := fmt.Sprintf("%s (%s:%s) asked: %s\n%s", who, ev.GetPlatform(), ev.GetTo(), shown, rep.GetData())
	token := verb[:1] + scheduleID(ev.GetReplyTo()+"\x00"+verb+"\x00"+t.shown)
	post := &chatopsv1.Event{
		Id:        token,
		Type:      rep.GetType(),
		From:      Bot,
		To:        t.to,
		Data:      []byte(r.capReply(text)),
		Meta:      t.meta,
		Platform:  t.platform,
		Time:      timestamppb.New(r.now()),
		InReplyTo: ev.GetId(),
	}
	if verb == cmdMail {
		post.Meta = map[string]string{metaMailSubject: "botmesh: " + truncate(shown, 120)}
	}
	if err := r.storeOutbound(ctx, t.platform, verb, token, post); err != nil {
		out.status, out.err = audit.StatusError, err.Error()
		r.log.Error("result to post elsewhere not stored", "verb", verb, "platform", t.platform, "err", err)
		return r.errorReply(ev, fmt.Sprintf("%s ran, but its result could not be stored for %s: nothing sent, try again later", truncate(shown, 80), t.shown))
	}
	out.status = audit.StatusOK
	r.log.Info("result sent elsewhere", "verb", verb, "platform", t.platform, "user", ev.GetFrom().GetId())
	if verb == cmdMail {
		return r.reply(ev, "mailing the result of `"+truncate(shown, 80)+"` to "+t.shown)
	}
	return r.reply(ev, "told "+t.shown)
}

// scheduleElsewhere checks a tell or mail that a schedule is to run (msg)
// as setSchedule checks a command: its target, and the policy for it now.
// It returns the command that tell or mail would run, for setSchedule to
// check in turn, or a refusal.
func (r *Router) scheduleElsewhere(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, out *outcome) (parse.Message, string) {
	verb := strings.ToLower(msg.Words[0])
	if len(msg.Words) < 3 {
		return msg, "nothing to schedule: " + verb + " needs a target and a command, e.g. every 1d " + verb + " " + map[string]string{cmdMail: "ops@example.com", cmdTell: "slack:#ops"}[verb] + " health greeter"
	}
	t, refusal := r.target(verb, msg.Words[1])
	if refusal != "" {
		return msg, refusal
	}
	inner, err := parse.Parse([]byte(parse.AfterWords(msg.Text, 2)), r.cfg.MaxMessageBytes)
	if err != nil || len(inner.Words) == 0 {
		return msg, "nothing to schedule: " + verb + " needs a command after " + msg.Words[1]
	}
	if w := inner.Words[0]; isScheduling(w) || isWatching(w) || isElsewhere(w) {
		return msg, fmt.Sprintf("%s runs one command and sends its result: it cannot run %s", verb, strings.ToLower(w))
	}
	if refusal := r.schedulable(ev, t.policy, out); refusal != "" {
		return msg, refusal
	}
	if r.js == nil {
		return msg, verb + " is not available: it needs the routers' reply streams (JetStream, --delivery jetstream)"
	}
	if why := r.unserved(ctx, t); why != "" {
		return msg, "nothing scheduled: " + why
	}
	return inner, ""
}

// unserved says why nothing would post to t, or "" when a gateway of its
// platform (for mail, a mail output) has read its reply stream: such a
// gateway leaves a consumer there, and the platform-wide outbound one
// stays while the platform has no gateway. A result stored for a platform
// no gateway has ever served would wait unseen until the stream drops it.
// When the stream cannot be read, the result is stored anyway: a NATS
// hiccup is not a reason to refuse.
func (r *Router) unserved(ctx context.Context, t elsewhereTarget) string {
	s, err := r.js.Stream(ctx, durable.ReplyStream(t.platform))
	if err == nil && s.CachedInfo().State.Consumers > 0 {
		return ""
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return ""
	}
	if t.platform == MailPlatform {
		return "no mail output has run on this mesh, so the mail would never be sent: start one (BOTMESH_SMTP_URL; see the README's \"Mail and other conversations\")"
	}
	return "no " + t.platform + " gateway has run on this mesh, so nothing would post to " + t.shown
}

// storeOutbound stores ev on platform's outbound path, under the gateway
// instance word instance and the token, once however often it is stored.
func (r *Router) storeOutbound(ctx context.Context, platform, instance, token string, ev *chatopsv1.Event) error {
	reply := chatopsv1.ReplySubject(platform, instance, token)
	if !chatopsv1.ValidReplySubject(reply) {
		return errors.New("router: not a valid reply subject: " + reply)
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	return r.storeData(ctx, durable.OutboundSubject(reply), data)
}
