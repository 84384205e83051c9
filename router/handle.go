package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/router/builtin"
	"github.com/botmesh/botmesh/router/directory"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/router/ratelimit"
	"github.com/botmesh/botmesh/sdk/parse"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"
)

var (
	yesPattern = regexp.MustCompile(`^(yes|y|confirm)$`)
	noPattern  = regexp.MustCompile(`^(no|n|cancel)$`)
)

// outcome is what the audit record says about a handled message.
type outcome struct {
	command, service, node, status, rule, err string
	// text is the message as recorded, its secret arguments redacted;
	// "" until the command is known (recordAudit works it out then).
	text string
	// name is the command's name as the policy saw it when it is not
	// command ("query greeter Greeter.Hello"), for the audit record. It
	// is not a metric label: users choose its words.
	name string
	// scheduled is set for a command a schedule runs: no rate limit (it
	// was admitted when set), no confirmation, no scheduling.
	scheduled bool
	// elsewhere is set, to tell or mail, for the command they run
	// (elsewhere.go): no rate limit (the tell was admitted), no dialog
	// answer or confirmation, no scheduling, no tell or mail.
	elsewhere string
}

// Handle answers one event and returns the reply event (a REPLY or an
// ERROR); it never returns nil. Every call leaves an audit record. It is what
// Run does for each message, minus NATS.
func (r *Router) Handle(ctx context.Context, ev *chatopsv1.Event) *chatopsv1.Event {
	start := r.now()
	var out outcome
	rep := r.handle(ctx, ev, &out, false)
	r.recordAudit(ev, out, start)
	return rep
}

func (r *Router) handle(ctx context.Context, ev *chatopsv1.Event, out *outcome, confirmed bool) *chatopsv1.Event {
	msg, err := parse.Parse(ev.GetData(), r.cfg.MaxMessageBytes)
	var tooLong *parse.TooLongError
	switch {
	case errors.Is(err, parse.ErrEmpty):
		out.status = audit.StatusRejected
		return r.errorReply(ev, "empty message. "+typeHelp(ev))
	case errors.As(err, &tooLong):
		out.status = audit.StatusRejected
		return r.errorReply(ev, fmt.Sprintf("message too long: %d bytes; the limit is %d", tooLong.Size, tooLong.Limit))
	case err != nil:
		out.status = audit.StatusRejected
		return r.errorReply(ev, err.Error())
	}
	relayed := out.scheduled || out.elsewhere != ""
	if !confirmed && !relayed {
		if lim := r.limiter.Allow(qualified(ev.GetPlatform(), ev.GetFrom().GetId()), qualified(ev.GetPlatform(), ev.GetTo())); lim != nil {
			out.status = audit.StatusLimited
			who := "you"
			if lim.Scope == "channel" {
				who = "this conversation"
			}
			return r.errorReply(ev, limitText(who, lim))
		}
	}
	if !confirmed && !relayed {
		if rep := r.answer(ctx, ev, msg, out); rep != nil { // dialog.go
			return rep
		}
	}
	key := msg.Key()
	word := msg.Words[0]
	switch {
	case out.elsewhere != "" && (isScheduling(word) || isWatching(word) || isElsewhere(word)):
		out.command = strings.ToLower(word)
		out.status = audit.StatusRejected
		return r.errorReply(ev, fmt.Sprintf("%s runs one command and sends its result: it cannot run %s", out.elsewhere, out.command))
	case out.elsewhere != "" && (yesPattern.MatchString(key) || noPattern.MatchString(key)):
		out.command = key
		out.status = audit.StatusRejected
		return r.errorReply(ev, fmt.Sprintf("%s runs a command: a confirmation is answered where it was asked", out.elsewhere))
	case !confirmed && yesPattern.MatchString(key):
		return r.confirmPending(ctx, ev, out)
	case !confirmed && noPattern.MatchString(key):
		return r.cancelPending(ctx, ev, out)
	case isScheduling(msg.Words[0]):
		return r.schedules(ctx, ev, msg, out)
	case isWatching(msg.Words[0]):
		return r.watchCommand(ctx, ev, msg, out)
	case isElsewhere(word):
		return r.elsewhere(ctx, ev, msg, out, confirmed) // elsewhere.go
	}

	// What is it, and may this user run it here?
	t, found := r.resolve(ctx, key, msg.Words)
	if !found {
		out.status = audit.StatusUnknown
		return r.errorReply(ev, r.unknown(ev, msg.Words))
	}
	name := t.name
	out.command = name
	out.service = t.cmd.Service
	shown := msg.Text // the text as it may be shown and recorded
	if t.cmd.Service != "" {
		shown = r.redact(ctx, msg, t.cmd, true)
		out.text = shown
	}
	if t.cmd.Service != "" && t.name == QueryCommand {
		service, method := queryTarget(msg.Words)
		if r.isCommandService(service) {
			out.status = audit.StatusDenied
			out.rule = "query does not call command services"
			return r.errorReply(ev, r.queryRefusal(service))
		}
		name = QueryName(service, method)
		out.name = name
	}
	var run func() *chatopsv1.Event
	switch {
	case t.help && len(msg.Words) > 1:
		run = func() *chatopsv1.Event { return r.helpFor(ctx, ev, msg.Words[1:]) }
	case t.help:
		run = func() *chatopsv1.Event { return r.reply(ev, r.helpText(ev)) }
	case t.builtin != nil:
		run = func() *chatopsv1.Event { return r.reply(ev, t.builtin.Exec(ctx, msg.Words)) }
	default:
		run = func() *chatopsv1.Event { return r.execWith(ctx, ev, msg, t.cmd, out, nil) }
	}
	d := r.decide(ev, name)
	out.rule = d.Rule
	if !d.Allowed {
		out.status = audit.StatusDenied
		return r.errorReply(ev, fmt.Sprintf("you may not run %q here (policy: %s). Ask an admin if you need it.", name, d.Rule))
	}
	if d.Confirm && out.scheduled {
		out.status = audit.StatusRejected
		return r.errorReply(ev, fmt.Sprintf("%q needs a confirmation now, so it does not run on a schedule", name))
	}
	if d.Confirm && out.elsewhere != "" {
		out.status = audit.StatusRejected
		return r.errorReply(ev, fmt.Sprintf("%q needs a confirmation, so %s cannot run it", name, out.elsewhere))
	}
	if d.Confirm && !confirmed {
		if t.cmd.Service != "" {
			if refusal := r.validate(ctx, ev, msg, t.cmd); refusal != "" {
				out.status = audit.StatusRejected
				out.err = refusal
				return r.errorReply(ev, t.name+": "+refusal)
			}
		}
		return r.askConfirmation(ctx, ev, shown, name, out)
	}
	// The command's own deadline (the context allows the longest one).
	ctx, cancel := context.WithTimeout(ctx, r.timeoutOf(t.name))
	defer cancel()
	rep := run()
	if out.status == "" {
		out.status = audit.StatusOK
		if rep.GetType() == chatopsv1.EventType_EVENT_TYPE_ERROR {
			out.status = audit.StatusError
		}
	}
	return rep
}

// target is what a message asks for: help, a built-in, or a command
// service's command.
type target struct {
	name    string // the command's name, as policies give it
	help    bool
	builtin *builtin.Command
	cmd     directory.Command
}

// resolve finds what the message with the words and key (parse.Message's)
// asks for, in the Micro Bot's order: help, the built-ins, then the command
// services (asking the registry on a miss, for a service the directory has
// not heard of yet).
func (r *Router) resolve(ctx context.Context, key string, words []string) (target, bool) {
	if builtin.HelpPattern.MatchString(key) {
		return target{name: builtin.HelpUsage, help: true}, true
	}
	if b, ok := builtin.Match(r.builtins, key); ok {
		return target{name: b.Name, builtin: b}, true
	}
	cmd, ok := r.dir.Match(words)
	if !ok {
		cmd, ok = r.dir.Lookup(ctx, words[0])
	}
	if !ok {
		// The service's registration may have come while the registry
		// was asked (a lookup waits for answers): such a command is
		// there, not unknown, nor "gone" (e2e's TestIntegrationMultiProcess
		// once got "gone" for a service found during the lookup).
		cmd, ok = r.dir.Match(words)
	}
	return target{name: cmd.Pattern(), cmd: cmd}, ok
}

// decide applies the policy to the event's author running the command name.
func (r *Router) decide(ev *chatopsv1.Event, name string) policy.Decision {
	return r.policy().Decide(policy.Request{Command: name, Platform: ev.GetPlatform(), User: ev.GetFrom().GetId(), Channel: ev.GetTo()})
}

// askConfirmation keeps ev until its author says yes; text is the message
// as it may be shown (its secrets redacted).
func (r *Router) askConfirmation(ctx context.Context, ev *chatopsv1.Event, text, name string, out *outcome) *chatopsv1.Event {
	out.status = audit.StatusConfirm
	held, err := proto.Marshal(ev)
	if err == nil {
		err = r.dialogs().put(ctx, confirmKey(ev), dialog{Command: name, Question: "yes?", Held: held, Asked: r.now()})
	}
	if err != nil {
		out.err = err.Error()
		r.log.Error("keeping a confirmation", "err", err)
		return r.errorReply(ev, fmt.Sprintf("%q needs a confirmation, and confirmations cannot be kept right now: try again later", name))
	}
	return r.reply(ev, fmt.Sprintf("%q needs your confirmation: reply yes within %s to run `%s`, or no to cancel.", name, r.cfg.ConfirmWindow, truncate(text, 200)))
}

// takeConfirmation removes and returns the command ev's author is asked
// to confirm here; nil if there is none (or its window has passed).
func (r *Router) takeConfirmation(ctx context.Context, ev *chatopsv1.Event, out *outcome) *chatopsv1.Event {
	d, ok, err := r.dialogs().take(ctx, confirmKey(ev))
	if err != nil {
		out.err = err.Error()
		r.log.Error("taking a confirmation", "err", err)
		return nil
	}
	held := &chatopsv1.Event{}
	if !ok || r.now().Sub(d.Asked) > r.cfg.ConfirmWindow || proto.Unmarshal(d.Held, held) != nil {
		return nil
	}
	return held
}

// confirmPending runs the command the user is confirming.
func (r *Router) confirmPending(ctx context.Context, ev *chatopsv1.Event, out *outcome) *chatopsv1.Event {
	out.command = "yes"
	orig := r.takeConfirmation(ctx, ev, out)
	if orig == nil {
		out.status = audit.StatusError
		return r.errorReply(ev, fmt.Sprintf("nothing to confirm: you have no command waiting here (they wait %s)", r.cfg.ConfirmWindow))
	}
	// Run the original, answered in the place of the yes.
	run := proto.Clone(ev).(*chatopsv1.Event)
	run.Data = orig.GetData()
	rep := r.handle(ctx, run, out, true)
	rep.InReplyTo = ev.GetId()
	return rep
}

func (r *Router) cancelPending(ctx context.Context, ev *chatopsv1.Event, out *outcome) *chatopsv1.Event {
	out.command = "no"
	if r.takeConfirmation(ctx, ev, out) == nil {
		out.status = audit.StatusError
		return r.errorReply(ev, "nothing to cancel: you have no command waiting here")
	}
	out.status = audit.StatusCancelled
	return r.reply(ev, "cancelled")
}

// limitText tells who (you, this conversation) which limit refused their
// command, the burst or the per-minute rate, and when to try again.
func limitText(who string, lim *ratelimit.Refusal) string {
	wait := lim.RetryAfter.Round(time.Second) + time.Second
	if lim.Burst > 0 {
		return fmt.Sprintf("slow down: %s sent more than %d commands at once; try again in %s.", who, lim.Burst, wait)
	}
	return fmt.Sprintf("slow down: %s sent more than %g commands a minute; try again in %s.", who, lim.PerMinute, wait)
}

func qualified(platform, id string) string { return platform + ":" + id }

// validateTimeout bounds the Command.Validate calls of one message: the
// user waits for them before the confirmation question. Each attempt gets
// at most validateAttempt: a check is quick and changes nothing, so an
// attempt that hangs (go-micro's http transport stalls a call now and then
// until its time-out, DEPENDENCIES.md) is abandoned and made again.
const (
	validateTimeout = 5 * time.Second
	validateAttempt = 1500 * time.Millisecond
)

// validate asks cmd's service to check the message before its author is
// asked to confirm it (Command.Validate, which a service may serve beside
// Help and Exec; see sdk/command.Validator), and returns the service's
// refusal, or "" when the message may go on to the confirmation: the
// service accepts it, or cannot check it (no Validate endpoint, not
// reachable), in which case Exec reports what is wrong after the yes.
func (r *Router) validate(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, cmd directory.Command) string {
	vctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	req := r.cl.NewRequest(cmd.Service, "Command.Validate", execRequest(ev, msg, cmd))
	for {
		rsp := &chatopsv1.ExecResponse{}
		actx, acancel := context.WithTimeout(vctx, validateAttempt)
		err := r.cl.Call(actx, req, rsp, client.WithRetries(0))
		acancel()
		if err == nil {
			return rsp.GetError()
		}
		if vctx.Err() != nil || merrors.FromError(err).Code != 408 /* go-micro: request timeout */ {
			r.log.Debug("command not validated before its confirmation", "service", cmd.Service, "command", cmd.Pattern(), "err", err)
			return ""
		}
		r.log.Debug("validation attempt timed out; trying again", "service", cmd.Service, "command", cmd.Pattern())
	}
}

// execRequest is what cmd's service gets for the message msg of ev.
func execRequest(ev *chatopsv1.Event, msg parse.Message, cmd directory.Command) *chatopsv1.ExecRequest {
	return &chatopsv1.ExecRequest{
		Args:   msg.Words,
		Caller: ev.GetFrom(),
		Conversation: &chatopsv1.Conversation{
			Platform: ev.GetPlatform(),
			Channel:  ev.GetTo(),
			Thread:   ev.GetThread(),
			Gateway:  ev.GetGateway(),
			EventId:  ev.GetId(),
		},
		Text:    msg.Text,
		Command: cmd.Pattern(),
	}
}

// execWith runs cmd's service with msg, and answer when msg answers the
// service's question (dialog.go).
func (r *Router) execWith(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, cmd directory.Command, out *outcome, answer *chatopsv1.Answer) *chatopsv1.Event {
	req := execRequest(ev, msg, cmd)
	req.Answer = answer
	rsp := &chatopsv1.ExecResponse{}
	name := cmd.Pattern()
	// Note which node ran it, for the audit record.
	noteNode := client.WithCallWrapper(func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			out.node = node.Id
			return next(ctx, node, req, rsp, opts)
		}
	})
	// Only nodes of the versions that serve the command run it.
	err := r.cl.Call(ctx, r.cl.NewRequest(cmd.Service, "Command.Exec", req), rsp, noteNode, client.WithSelectOption(directory.SelectVersion(cmd.Versions...)))
	if err != nil {
		out.err = err.Error()
		out.status = audit.StatusError
		timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err)
		if timedOut {
			out.status = audit.StatusTimeout
		}
		return r.errorReply(ev, callError(name, cmd.Service, r.timeoutOf(name), err, timedOut))
	}
	if rsp.GetError() != "" {
		out.err = rsp.GetError()
		out.status = audit.StatusError
		return r.errorReply(ev, name+": "+rsp.GetError())
	}
	if q := rsp.GetQuestion(); q != nil {
		if out.elsewhere != "" {
			// Its answer would be awaited here, its question asked there.
			out.status = audit.StatusRejected
			return r.errorReply(ev, fmt.Sprintf("%s asks a question first, so %s cannot run it: run it here", name, out.elsewhere))
		}
		return r.ask(ctx, ev, cmd, q, out)
	}
	if len(rsp.GetResult()) == 0 {
		return r.reply(ev, "(no output)")
	}
	return r.reply(ev, string(rsp.GetResult()))
}

func (r *Router) recordAudit(ev *chatopsv1.Event, out outcome, start time.Time) {
	took := r.now().Sub(start)
	r.observe(ev.GetPlatform(), out, took.Seconds())
	r.recorder().Record(audit.Record{
		Time:      start,
		RequestID: ev.GetId(),
		Platform:  ev.GetPlatform(),
		Team:      ev.GetFrom().GetTeam(),
		User:      ev.GetFrom().GetId(),
		Channel:   ev.GetTo(),
		Text:      r.auditText(ev, out),
		Command:   cmp.Or(out.name, out.command),
		Service:   out.service,
		Node:      out.node,
		Status:    out.status,
		Rule:      out.rule,
		Error:     out.err,
		Duration:  float64(took.Microseconds()) / 1000,
		Router:    r.id,
	})
}

// QueryCommand is the pattern of the query command (services/query):
// policies name a query by its target, see QueryName.
const QueryCommand = "query"

// QueryName is the command name policies see for `query SERVICE METHOD
// [JSON]`: "query SERVICE METHOD" ("query greeter Greeter.Hello"), or
// "query" when the service is missing.
func QueryName(service, method string) string {
	return strings.TrimSpace(strings.Join([]string{QueryCommand, service, method}, " "))
}

// queryTarget returns the service and method a query's words name, as the
// query service reads them (query.ParseCall): SERVICE is the second word,
// METHOD the third up to where the JSON starts.
func queryTarget(words []string) (service, method string) {
	if len(words) > 1 {
		service = words[1]
	}
	if len(words) > 2 {
		method = words[2]
		if i := strings.IndexAny(method, "{[`"); i >= 0 {
			method = method[:i]
		}
	}
	return service, method
}

// isCommandService reports whether service is in the command namespace:
// query never calls those (a query of go.micro.bot.registry's Command.Exec
// would register a service without the confirmation the command asks for).
func (r *Router) isCommandService(service string) bool {
	ns := strings.ToLower(r.m.Namespace()) + "."
	return len(service) > len(ns) && strings.HasPrefix(strings.ToLower(service), ns)
}

// queryRefusal tells the user to run a command service's commands
// themselves.
func (r *Router) queryRefusal(service string) string {
	var cmds []string
	for _, c := range r.dir.Commands() {
		if strings.EqualFold(c.Service, service) && !slices.Contains(cmds, c.Pattern()) {
			cmds = append(cmds, c.Pattern())
		}
	}
	text := fmt.Sprintf("query does not call command services such as %s: run the command itself", truncate(service, 80))
	if len(cmds) > 0 {
		text += " (" + strings.Join(cmds, ", ") + ")"
	}
	return text + "; type help for the commands and their usage."
}

// auditText is the message text of ev's audit record: with the secret
// arguments of its command redacted, when the command is one of a
// service's. Before handle knew the command (a forged event, a rate-limited
// message) the command is matched again, and a command whose secrets this
// router has not learnt yet has every argument redacted.
func (r *Router) auditText(ev *chatopsv1.Event, out outcome) string {
	if out.text != "" {
		return out.text
	}
	raw := strings.ToValidUTF8(string(ev.GetData()), "\uFFFD")
	msg, err := parse.Parse(ev.GetData(), r.cfg.MaxMessageBytes)
	if err != nil {
		return raw
	}
	if builtin.HelpPattern.MatchString(msg.Key()) {
		return raw
	}
	if _, ok := builtin.Match(r.builtins, msg.Key()); ok {
		return raw
	}
	cmd, ok := r.dir.Match(msg.Words)
	if !ok {
		return raw
	}
	return r.redact(context.Background(), msg, cmd, false)
}

// redact returns msg's text with cmd's secret arguments redacted. ask lets
// it ask the service (Command.Help) when this router does not know them
// yet; when they cannot be known, every word after the command's is
// redacted.
func (r *Router) redact(ctx context.Context, msg parse.Message, cmd directory.Command, ask bool) string {
	args, known := r.secretArgs(ctx, cmd, ask)
	if !known {
		return audit.Redact(msg.Text, nil, len(cmd.Words))
	}
	if len(args) == 0 {
		return msg.Text
	}
	return audit.Redact(msg.Text, args, -1)
}

// secretCaches holds each router's secretCache, by router id. The cache
// belongs in the directory, which already has every service's Help answer
// (directory.Command could carry CommandSpec.secret_args): until it does,
// routers ask the services themselves, once per service per resync
// interval.
var secretCaches sync.Map // router id → *secretCache

// secretCache is what a router knows of its services' secret arguments.
type secretCache struct {
	mu      sync.Mutex
	byName  map[string]secretEntry // by service
	fetches singleflight.Group
}

type secretEntry struct {
	args  map[string][]uint32 // by command pattern; "" for a one-command service
	known bool                // Help answered
	at    time.Time
}

// secretFailTTL is how long a failed Help call is remembered: a service
// that is down does not cost every message a Help call.
const secretFailTTL = 2 * time.Second

func (r *Router) secrets() *secretCache {
	if c, ok := secretCaches.Load(r.id); ok {
		return c.(*secretCache)
	}
	c, loaded := secretCaches.LoadOrStore(r.id, &secretCache{byName: map[string]secretEntry{}})
	if !loaded {
		runtime.AddCleanup(r, func(id string) { secretCaches.Delete(id) }, r.id)
	}
	return c.(*secretCache)
}

// secretArgs returns the positions of cmd's secret arguments, and whether
// they are known: from the cache, or, if ask, from the service's Help.
func (r *Router) secretArgs(ctx context.Context, cmd directory.Command, ask bool) ([]uint32, bool) {
	c := r.secrets()
	now := r.now()
	c.mu.Lock()
	e, ok := c.byName[cmd.Service]
	c.mu.Unlock()
	fresh := ok && (e.known && now.Sub(e.at) < r.cfg.ResyncInterval || !e.known && now.Sub(e.at) < secretFailTTL)
	if !fresh && ask {
		v, _, _ := c.fetches.Do(cmd.Service, func() (any, error) {
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			rsp, err := r.help(hctx, cmd.Service)
			e := secretEntry{known: err == nil, at: r.now()}
			if err == nil {
				e.args = map[string][]uint32{}
				for _, s := range rsp.GetCommands() {
					e.args[strings.Join(strings.Fields(strings.ToLower(s.GetPattern())), " ")] = s.GetSecretArgs()
				}
				if len(rsp.GetCommands()) == 0 {
					e.args[""] = rsp.GetSecretArgs()
				}
			} else {
				r.log.Debug("secret arguments unknown: the service did not answer Help", "service", cmd.Service, "err", err)
			}
			c.mu.Lock()
			c.byName[cmd.Service] = e
			c.mu.Unlock()
			return e, nil
		})
		e, ok = v.(secretEntry), true
	}
	if !ok || !e.known {
		return nil, false
	}
	if args, ok := e.args[cmd.Pattern()]; ok {
		return args, true
	}
	return e.args[""], true
}
