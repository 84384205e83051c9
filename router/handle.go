package router

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/router/builtin"
	"github.com/botmesh/botmesh/router/confirm"
	"github.com/botmesh/botmesh/router/directory"
	"github.com/botmesh/botmesh/router/parse"
	"github.com/botmesh/botmesh/router/policy"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"google.golang.org/protobuf/proto"
)

var (
	yesPattern = regexp.MustCompile(`^(yes|y|confirm)$`)
	noPattern  = regexp.MustCompile(`^(no|n|cancel)$`)
)

// outcome is what the audit record says about a handled message.
type outcome struct {
	command, service, node, status, rule, err string
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
		return r.errorReply(ev, "empty message: type help for the commands")
	case errors.As(err, &tooLong):
		out.status = audit.StatusRejected
		return r.errorReply(ev, fmt.Sprintf("message too long: %d bytes; the limit is %d", tooLong.Size, tooLong.Limit))
	case err != nil:
		out.status = audit.StatusRejected
		return r.errorReply(ev, err.Error())
	}
	if !confirmed {
		if lim := r.limiter.Allow(qualified(ev.GetPlatform(), ev.GetFrom().GetId()), qualified(ev.GetPlatform(), ev.GetTo())); lim != nil {
			out.status = audit.StatusLimited
			who := "you"
			if lim.Scope == "channel" {
				who = "this conversation"
			}
			return r.errorReply(ev, fmt.Sprintf("slow down: %s sent more than %g commands a minute; try again in %s", who, lim.PerMinute, lim.RetryAfter.Round(time.Second)+time.Second))
		}
	}
	key := msg.Key()
	switch {
	case !confirmed && yesPattern.MatchString(key):
		return r.confirmPending(ctx, ev, out)
	case !confirmed && noPattern.MatchString(key):
		return r.cancelPending(ctx, ev, out)
	}

	// What is it, and may this user run it here?
	t, found := r.resolve(ctx, key, msg.Words)
	if !found {
		out.status = audit.StatusUnknown
		return r.errorReply(ev, r.unknown(msg.Words[0]))
	}
	name := t.name
	out.command = name
	out.service = t.cmd.Service
	var run func() *chatopsv1.Event
	switch {
	case t.help:
		run = func() *chatopsv1.Event { return r.reply(ev, r.helpText(ev)) }
	case t.builtin != nil:
		run = func() *chatopsv1.Event { return r.reply(ev, t.builtin.Exec(ctx, msg.Words)) }
	default:
		run = func() *chatopsv1.Event { return r.exec(ctx, ev, msg, t.cmd, out) }
	}
	d := r.decide(ev, name)
	out.rule = d.Rule
	if !d.Allowed {
		out.status = audit.StatusDenied
		return r.errorReply(ev, fmt.Sprintf("you may not run %q here (policy: %s). Ask an admin if you need it.", name, d.Rule))
	}
	if d.Confirm && !confirmed {
		return r.askConfirmation(ctx, ev, msg, name, out)
	}
	// The command's own deadline (the context allows the longest one).
	ctx, cancel := context.WithTimeout(ctx, r.timeoutOf(name))
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
	return target{name: cmd.Pattern(), cmd: cmd}, ok
}

// decide applies the policy to the event's author running the command name.
func (r *Router) decide(ev *chatopsv1.Event, name string) policy.Decision {
	return r.policy().Decide(policy.Request{Command: name, Platform: ev.GetPlatform(), User: ev.GetFrom().GetId(), Channel: ev.GetTo()})
}

// askConfirmation keeps ev until its author says yes.
func (r *Router) askConfirmation(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, name string, out *outcome) *chatopsv1.Event {
	out.status = audit.StatusConfirm
	if err := r.confirms().Put(ctx, confirmKey(ev), ev); err != nil {
		out.err = err.Error()
		r.log.Error("keeping a confirmation", "err", err)
		return r.errorReply(ev, fmt.Sprintf("%q needs a confirmation, and confirmations cannot be kept right now: try again later", name))
	}
	return r.reply(ev, fmt.Sprintf("%q needs your confirmation: reply yes within %s to run `%s`, or no to cancel.", name, r.confirms().Window(), truncate(msg.Text, 200)))
}

// confirmPending runs the command the user is confirming.
func (r *Router) confirmPending(ctx context.Context, ev *chatopsv1.Event, out *outcome) *chatopsv1.Event {
	out.command = "yes"
	orig, err := r.confirms().Take(ctx, confirmKey(ev))
	if err != nil {
		out.status = audit.StatusError
		if !errors.Is(err, confirm.ErrNone) {
			out.err = err.Error()
			r.log.Error("taking a confirmation", "err", err)
		}
		return r.errorReply(ev, fmt.Sprintf("nothing to confirm: you have no command waiting here (they wait %s)", r.confirms().Window()))
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
	if _, err := r.confirms().Take(ctx, confirmKey(ev)); err != nil {
		out.status = audit.StatusError
		return r.errorReply(ev, "nothing to cancel: you have no command waiting here")
	}
	out.status = audit.StatusCancelled
	return r.reply(ev, "cancelled")
}

func confirmKey(ev *chatopsv1.Event) string {
	return confirm.Key(ev.GetPlatform(), ev.GetFrom().GetTeam(), ev.GetFrom().GetId(), ev.GetTo(), "")
}

func qualified(platform, id string) string { return platform + ":" + id }

func (r *Router) exec(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, cmd directory.Command, out *outcome) *chatopsv1.Event {
	req := &chatopsv1.ExecRequest{
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
	rsp := &chatopsv1.ExecResponse{}
	name := cmd.Pattern()
	// Note which node ran it, for the audit record.
	noteNode := client.WithCallWrapper(func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			out.node = node.Id
			return next(ctx, node, req, rsp, opts)
		}
	})
	err := r.cl.Call(ctx, r.cl.NewRequest(cmd.Service, "Command.Exec", req), rsp, noteNode)
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
		Text:      strings.ToValidUTF8(string(ev.GetData()), "\uFFFD"),
		Command:   out.command,
		Service:   out.service,
		Node:      out.node,
		Status:    out.status,
		Rule:      out.rule,
		Error:     out.err,
		Duration:  float64(took.Microseconds()) / 1000,
		Router:    r.id,
	})
}
