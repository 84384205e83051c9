package router

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/router/inbound"
	"github.com/botmesh/botmesh/router/schedule"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/parse"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// Scheduled commands. A user sets one with in, at, every or cron; the
// router checks the command (it exists, the policy lets the user run it
// here, it needs no confirmation and has no secret arguments), then stores
// the Event that asked, its data replaced by the command, as a JetStream
// message schedule in durable.ScheduleStream (see there for the subjects).
// nats-server keeps it and fires it, once, however many routers run, into
// bot.v1.sched.fire.<platform>; the routers read those through one shared
// durable consumer, as they read BOTMESH_IN, claim each (durable.Claims)
// and run the command as the user who set it, in the conversation where it
// was set, checking the policy again. The result takes the outbound path
// (sdk/durable/outbound.go): stored in the platform's reply stream on
// bot.v1.out.<platform>.<instance>.s<id>-<seq>.o, it is posted by any live
// gateway of a Slack, XMPP or IRC conversation, and by the web or shell
// gateway instance that took the message that set it (a web session keeps
// it in its history until the tab is back).

// Schedule command words other than the verbs of package schedule.
const (
	cmdSchedules  = "schedules"
	cmdUnschedule = "unschedule"
)

// scheduleHelp are help's lines for the scheduling commands, by the name
// policies give them.
var scheduleHelp = []struct{ name, line string }{
	{"in", schedule.UsageIn + " - Runs COMMAND once, after DURATION (e.g. in 10m health greeter)"},
	{"at", schedule.UsageAt + " - Runs COMMAND once, at TIME (17:30, or 2026-12-24 17:30; UTC unless ZONE, e.g. Europe/Berlin)"},
	{"every", schedule.UsageEvery + " - Runs COMMAND every DURATION (at least 1s)"},
	{"cron", schedule.UsageCron + " - Runs COMMAND on a six-field cron expression, seconds first"},
	{cmdSchedules, cmdSchedules + " - Lists this conversation's schedules"},
	{cmdUnschedule, cmdUnschedule + " ID - Removes a schedule you set"},
}

// firstHelp are help's lines, by name, for the commands of the bot that
// speaks first (schedules, watches) that ev's platform has.
func (r *Router) firstHelp(ev *chatopsv1.Event) []struct{ name, line string } {
	if !r.schedulesOn(ev.GetPlatform()) {
		return nil
	}
	var lines []struct{ name, line string }
	if r.sched != nil {
		lines = append(lines, scheduleHelp...)
	}
	if r.watch != nil {
		lines = append(lines, watchHelp...)
	}
	return lines
}

// isScheduling reports whether word starts one of the scheduling commands.
func isScheduling(word string) bool {
	return schedule.IsVerb(word) || strings.EqualFold(word, cmdSchedules) || strings.EqualFold(word, cmdUnschedule)
}

// scheduleTimeout bounds the NATS requests of one scheduling command.
const scheduleTimeout = 10 * time.Second

// refuseSpeakFirst is the check of the commands that make the bot speak
// first (schedules, watches): it records verb in out and returns the
// refusal of a scheduled run (inScheduled: what it may not do) or of a user
// the policy does not allow, or nil.
func (r *Router) refuseSpeakFirst(ev *chatopsv1.Event, verb string, out *outcome, inScheduled string) *chatopsv1.Event {
	out.command = verb
	if out.scheduled {
		out.status = audit.StatusRejected
		return r.errorReply(ev, inScheduled)
	}
	d := r.decide(ev, verb)
	out.rule = d.Rule
	if !d.Allowed {
		out.status = audit.StatusDenied
		return r.errorReply(ev, fmt.Sprintf("you may not run %q here (policy: %s). Ask an admin if you need it.", verb, d.Rule))
	}
	return nil
}

// schedules answers in, at, every, cron, schedules and unschedule.
func (r *Router) schedules(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, out *outcome) *chatopsv1.Event {
	verb := strings.ToLower(msg.Words[0])
	if refused := r.refuseSpeakFirst(ev, verb, out, "a schedule cannot set or change schedules"); refused != nil {
		return refused
	}
	if r.sched == nil {
		out.status = audit.StatusError
		return r.errorReply(ev, "schedules are not available: the NATS server has no JetStream (or the schedules stream could not be made)")
	}
	sctx, cancel := context.WithTimeout(ctx, scheduleTimeout)
	defer cancel()
	var rep *chatopsv1.Event
	switch verb {
	case cmdSchedules:
		rep = r.listSchedules(sctx, ev, msg)
	case cmdUnschedule:
		rep = r.unschedule(sctx, ev, msg)
	default:
		rep = r.setSchedule(sctx, ev, msg, out)
	}
	if out.status == "" {
		out.status = audit.StatusOK
		if rep.GetType() == chatopsv1.EventType_EVENT_TYPE_ERROR {
			out.status = audit.StatusRejected
		}
	}
	return rep
}

func userKey(ev *chatopsv1.Event) string {
	return durable.ScheduleKey(ev.GetPlatform(), ev.GetFrom().GetTeam(), ev.GetFrom().GetId())
}

func convKey(ev *chatopsv1.Event) string {
	return durable.ScheduleKey(ev.GetPlatform(), ev.GetFrom().GetTeam(), ev.GetTo())
}

// schedulable says why ev's user may not schedule the command policy
// knows as name (the policy denies it, or it needs a confirmation nobody
// would be there to give), or "" when they may; a denial is audited as one.
func (r *Router) schedulable(ev *chatopsv1.Event, name string, out *outcome) string {
	d := r.decide(ev, name)
	switch {
	case !d.Allowed:
		out.status, out.rule = audit.StatusDenied, d.Rule
		return fmt.Sprintf("you may not run %q here (policy: %s), so you may not schedule it", name, d.Rule)
	case d.Confirm:
		return fmt.Sprintf("%q needs a confirmation each time it runs, so it cannot be scheduled", name)
	}
	return ""
}

// setSchedule checks and stores a schedule.
func (r *Router) setSchedule(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, out *outcome) *chatopsv1.Event {
	spec, err := schedule.Parse(msg.Text, r.now())
	if err != nil {
		return r.errorReply(ev, err.Error())
	}
	if !chatopsv1.ValidReplySubject(ev.GetReplyTo()) {
		return r.errorReply(ev, "schedules cannot be set from here: this gateway gives no reply subject to post the results to")
	}
	if !r.schedulesOn(ev.GetPlatform()) {
		return r.errorReply(ev, fmt.Sprintf("schedules are not available on %s yet: its gateway would not post the results (they are on %s)", ev.GetPlatform(), strings.Join(r.schedulePlatforms(), ", ")))
	}
	// The command must be one this user may run here, now, without a
	// confirmation (nobody would be there to confirm), and without secret
	// arguments (the stream would keep them).
	cmsg, err := parse.Parse([]byte(spec.Command), r.cfg.MaxMessageBytes)
	if err != nil {
		return r.errorReply(ev, "nothing to schedule: "+err.Error())
	}
	if isElsewhere(cmsg.Words[0]) {
		// tell or mail: its target and the policy for it now, then the
		// command it runs, as below (elsewhere.go checks both again each
		// time it runs).
		inner, refusal := r.scheduleElsewhere(ctx, ev, cmsg, out)
		if refusal != "" {
			return r.errorReply(ev, refusal)
		}
		cmsg = inner
	}
	if yesPattern.MatchString(cmsg.Key()) || noPattern.MatchString(cmsg.Key()) {
		return r.errorReply(ev, "a confirmation cannot be scheduled")
	}
	t, found := r.resolve(ctx, cmsg.Key(), cmsg.Words)
	if !found {
		return r.errorReply(ev, "nothing scheduled: "+r.unknown(ev, cmsg.Words))
	}
	name := t.name
	if t.cmd.Service != "" && t.name == QueryCommand {
		service, method := queryTarget(cmsg.Words)
		if r.isCommandService(service) {
			return r.errorReply(ev, r.queryRefusal(service))
		}
		name = QueryName(service, method)
	}
	if refusal := r.schedulable(ev, name, out); refusal != "" {
		return r.errorReply(ev, refusal)
	}
	if t.cmd.Service != "" {
		if args, known := r.secretArgs(ctx, t.cmd, true); known && len(args) > 0 {
			return r.errorReply(ev, fmt.Sprintf("%q has secret arguments, which a schedule would keep: it cannot be scheduled", name))
		}
	}

	user := userKey(ev)
	if n, err := r.countSchedules(ctx, durable.ScheduleDefPrefix+"*."+user+".*"); err != nil {
		out.err = err.Error()
		r.log.Error("counting a user's schedules", "err", err)
		return r.errorReply(ev, "schedules cannot be read right now: nothing scheduled, try again later")
	} else if n >= r.cfg.SchedulesPerUser {
		return r.errorReply(ev, fmt.Sprintf("you have %d schedules, the most one user may have: remove one first (schedules lists those of a conversation, unschedule ID removes one)", n))
	}

	id := scheduleID(ev.GetReplyTo())
	def := proto.Clone(ev).(*chatopsv1.Event)
	def.Data = []byte(spec.Command)
	data, err := proto.Marshal(def)
	if err != nil {
		return r.errorReply(ev, "nothing scheduled: "+err.Error())
	}
	hdr := nats.Header{}
	hdr.Set(jetstream.MsgIDHeader, "def-"+id)
	hdr.Set(jetstream.ScheduleHeader, spec.Pattern)
	hdr.Set(jetstream.ScheduleTargetHeader, durable.ScheduleFire(ev.GetPlatform()))
	hdr.Set(jetstream.ScheduleTTLHeader, durable.ScheduleFireTTL.String())
	if spec.TimeZone != "" {
		hdr.Set(jetstream.ScheduleTimeZoneHeader, spec.TimeZone)
	}
	hdr.Set(durable.HeaderScheduleID, id)
	hdr.Set(durable.HeaderScheduleDesc, spec.Desc)
	if !spec.When.IsZero() {
		hdr.Set(durable.HeaderScheduleOnce, spec.When.Format(time.RFC3339))
	}
	subject := durable.ScheduleDef(convKey(ev), user, id)
	if _, err := durable.Publish(ctx, r.schedJS, &nats.Msg{Subject: subject, Header: hdr, Data: data}); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			switch apiErr.ErrorCode {
			case jetstream.JSErrCodeSchedulePatternInvalid:
				return r.errorReply(ev, fmt.Sprintf("nats-server does not accept %s: check each field's range (seconds 0-59, minutes 0-59, hours 0-23, day 1-31, month 1-12, weekday 0-6)", spec.Desc))
			case 10223: // the time zone is invalid
				return r.errorReply(ev, fmt.Sprintf("nats-server does not know the time zone of %s", spec.Desc))
			}
		}
		out.err = err.Error()
		r.log.Error("storing a schedule", "subject", subject, "err", err)
		return r.errorReply(ev, "the schedule could not be stored: nothing scheduled, try again later")
	}
	r.log.Info("schedule set", "id", id, "schedule", spec.Desc, "platform", ev.GetPlatform(), "user", ev.GetFrom().GetId())
	text := fmt.Sprintf("scheduled %s: `%s` %s", id, truncate(spec.Command, 200), spec.Desc)
	switch {
	case !spec.When.IsZero():
		text += " (" + spec.When.Format("Mon 2 Jan 15:04:05 MST") + ")"
	case spec.Kind == schedule.Every:
		text += fmt.Sprintf(" (first at about %s)", r.now().UTC().Round(time.Second).Add(spec.Interval).Format("15:04:05 MST"))
	}
	if spec.Note != "" {
		text += ". " + spec.Note
	}
	return r.reply(ev, text+". To remove it: unschedule "+id)
}

// schedulesOn reports whether users of platform may set schedules.
func (r *Router) schedulesOn(platform string) bool {
	ps := r.schedulePlatforms()
	return len(ps) == 0 || slices.Contains(ps, platform)
}

// schedulePlatforms returns the platforms whose users may set schedules;
// none means all.
func (r *Router) schedulePlatforms() []string {
	var ps []string
	for _, p := range strings.Split(r.cfg.SchedulePlatforms, ",") {
		if p = strings.TrimSpace(p); p != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// countSchedules counts the schedules whose subjects match filter.
func (r *Router) countSchedules(ctx context.Context, filter string) (int, error) {
	subjects, err := r.scheduleSubjects(ctx, filter)
	return len(subjects), err
}

// scheduleSubjects returns the schedule subjects that match filter.
func (r *Router) scheduleSubjects(ctx context.Context, filter string) ([]string, error) {
	info, err := r.sched.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	subjects := make([]string, 0, len(info.State.Subjects))
	for s := range info.State.Subjects {
		subjects = append(subjects, s)
	}
	sort.Strings(subjects)
	return subjects, nil
}

// maxListed bounds the schedules one listing shows.
const maxListed = 50

// listSchedules lists the conversation's schedules.
func (r *Router) listSchedules(ctx context.Context, ev *chatopsv1.Event, msg parse.Message) *chatopsv1.Event {
	if len(msg.Words) > 1 {
		return r.errorReply(ev, "usage: schedules (lists this conversation's schedules)")
	}
	subjects, err := r.scheduleSubjects(ctx, durable.ScheduleDefPrefix+convKey(ev)+".*.*")
	if err != nil {
		r.log.Error("listing schedules", "err", err)
		return r.errorReply(ev, "schedules cannot be read right now: try again later")
	}
	type row struct {
		next time.Time
		line string
	}
	var rows []row
	for _, subject := range subjects {
		m, err := r.sched.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // fired or removed meanwhile
		}
		if err != nil {
			r.log.Error("reading a schedule", "subject", subject, "err", err)
			return r.errorReply(ev, "schedules cannot be read right now: try again later")
		}
		set := &chatopsv1.Event{}
		if err := proto.Unmarshal(m.Data, set); err != nil || set.GetTo() != ev.GetTo() || set.GetPlatform() != ev.GetPlatform() {
			continue
		}
		next, when := nextRun(m, r.now())
		who := set.GetFrom().GetName()
		if who == "" {
			who = set.GetFrom().GetId()
		}
		rows = append(rows, row{next, fmt.Sprintf("%s  next %s  %s  set by %s  `%s`", m.Header.Get(durable.HeaderScheduleID), when, m.Header.Get(durable.HeaderScheduleDesc), who, truncate(string(set.GetData()), 120))})
	}
	if len(rows) == 0 {
		return r.reply(ev, "no schedules here. Set one with in, at, every or cron (type help).")
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i].next, rows[j].next
		return !a.IsZero() && (b.IsZero() || a.Before(b))
	})
	lines := []string{fmt.Sprintf("%d schedule(s) here (id, next run, schedule, who set it, command):", len(rows))}
	for i, rw := range rows {
		if i == maxListed {
			lines = append(lines, fmt.Sprintf("… and %d more", len(rows)-maxListed))
			break
		}
		lines = append(lines, rw.line)
	}
	return r.reply(ev, strings.Join(lines, "\n"))
}

// nextRun says when the schedule in m runs next: the time, when it is
// known, and how to show it.
func nextRun(m *jetstream.RawStreamMsg, now time.Time) (time.Time, string) {
	if once, err := time.Parse(time.RFC3339, m.Header.Get(durable.HeaderScheduleOnce)); err == nil {
		return once, once.UTC().Format("2006-01-02 15:04:05 MST")
	}
	pattern := m.Header.Get(jetstream.ScheduleHeader)
	if d, err := time.ParseDuration(strings.TrimPrefix(pattern, "@every ")); err == nil && d > 0 {
		// nats-server fires @every d from when it was stored, rounded to
		// the second, then d after each firing.
		start := m.Time.UTC().Round(time.Second)
		next := start.Add(d)
		if now.After(next) {
			next = next.Add(now.Sub(next).Truncate(d) + d)
		}
		return next, "≈" + next.Format("2006-01-02 15:04:05 MST")
	}
	return time.Time{}, "per cron"
}

// unschedule removes a schedule its author names.
func (r *Router) unschedule(ctx context.Context, ev *chatopsv1.Event, msg parse.Message) *chatopsv1.Event {
	if len(msg.Words) != 2 {
		return r.errorReply(ev, "usage: unschedule ID (schedules lists the ids)")
	}
	id := strings.ToLower(msg.Words[1])
	if !validScheduleID(id) {
		return r.errorReply(ev, fmt.Sprintf("%q is not a schedule id: schedules lists them", truncate(msg.Words[1], 40)))
	}
	subjects, err := r.scheduleSubjects(ctx, durable.ScheduleDefPrefix+"*.*."+id)
	if err != nil {
		r.log.Error("finding a schedule", "err", err)
		return r.errorReply(ev, "schedules cannot be read right now: try again later")
	}
	if len(subjects) == 0 {
		return r.errorReply(ev, fmt.Sprintf("there is no schedule %s (one that ran once is gone): schedules lists this conversation's", id))
	}
	subject := subjects[0]
	if toks := strings.Split(subject, "."); len(toks) < 3 || toks[len(toks)-2] != userKey(ev) {
		return r.errorReply(ev, fmt.Sprintf("schedule %s was set by someone else: only its author can remove it", id))
	}
	m, err := r.sched.GetLastMsgForSubject(ctx, subject)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		r.log.Error("reading a schedule", "subject", subject, "err", err)
		return r.errorReply(ev, "schedules cannot be read right now: try again later")
	}
	if err := r.removeSchedule(ctx, subject, id); err != nil {
		r.log.Error("removing a schedule", "subject", subject, "err", err)
		return r.errorReply(ev, fmt.Sprintf("schedule %s could not be removed right now: try again later", id))
	}
	r.log.Info("schedule removed", "id", id, "platform", ev.GetPlatform(), "user", ev.GetFrom().GetId())
	what := ""
	if m != nil {
		set := &chatopsv1.Event{}
		if proto.Unmarshal(m.Data, set) == nil {
			what = fmt.Sprintf(" (`%s` %s)", truncate(string(set.GetData()), 120), m.Header.Get(durable.HeaderScheduleDesc))
		}
	}
	return r.reply(ev, "removed schedule "+id+what)
}

// removeSchedule purges the schedule on subject: a message that asks
// nats-server to (Nats-Schedule-Next: purge, Nats-Scheduler: the
// schedule's subject), so routers need no right to delete from the stream.
func (r *Router) removeSchedule(ctx context.Context, subject, id string) error {
	hdr := nats.Header{}
	hdr.Set(jetstream.MsgIDHeader, "unset-"+id)
	hdr.Set("Nats-Schedule-Next", "purge")
	hdr.Set("Nats-Scheduler", subject)
	hdr.Set(jetstream.MsgTTLHeader, "1m")
	_, err := durable.Publish(ctx, r.schedJS, &nats.Msg{Subject: durable.ScheduleUnsetPfx + id, Header: hdr})
	return err
}

// scheduleIDLen is the length of a schedule id: 8 characters of base32,
// 40 bits of a hash.
const scheduleIDLen = 8

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// scheduleID returns the id of the schedule that the message answered on
// reply sets: derived from it, so that a message handed to a router again
// (its first router died before acknowledging it) stores the same
// schedule, which the stream keeps once (same subject, same message id).
func scheduleID(reply string) string {
	h := sha256.Sum256([]byte(reply))
	return idEncoding.EncodeToString(h[:5])
}

func validScheduleID(id string) bool {
	if len(id) != scheduleIDLen {
		return false
	}
	_, err := idEncoding.DecodeString(id)
	return err == nil
}

// processFired runs a command a schedule fired.
func (r *Router) processFired(ctx context.Context, m *inbound.Message) {
	ev := &chatopsv1.Event{}
	if err := proto.Unmarshal(m.Data, ev); err != nil {
		r.log.Warn("dropping a malformed scheduled command", "subject", m.Subject, "err", err)
		m.Done(nil)
		return
	}
	// Only routers publish on bot.v1.sched.> (NATS permissions), and
	// they wrote the platform into the schedule's target from the subject
	// the setting message came in on: it must agree with the body.
	platform := strings.TrimPrefix(m.Subject, durable.ScheduleFirePrefix)
	id := m.Header.Get(durable.HeaderScheduleID)
	orig := ev.GetReplyTo()
	if !chatopsv1.ValidToken(platform) || ev.GetPlatform() != platform || chatopsv1.ReplyPlatform(orig) != platform || !validScheduleID(id) {
		r.log.Warn("refused: a scheduled command that does not match its subject", "subject", m.Subject, "platform", ev.GetPlatform(), "reply_to", orig, "id", id)
		r.refuseForged(ev, m.Subject)
		m.Done(nil)
		return
	}
	def := m.Header.Get("Nats-Scheduler")
	repeating := m.Header.Get("Nats-Schedule-Next") != "purge"
	if repeating && def != "" && !r.scheduleExists(ctx, def) {
		// Removed after it fired and before it ran.
		r.log.Info("schedule removed before its command ran; not run", "id", id)
		m.Done(nil)
		return
	}
	instance := strings.Split(strings.TrimPrefix(orig, chatopsv1.SubjectOutPrefix), ".")[1]
	to := chatopsv1.ReplySubject(platform, instance, "s"+id+"-"+strconv.FormatUint(m.Seq, 10))
	ev.ReplyTo = to
	ev.Id = "sched-" + id + "-" + strconv.FormatUint(m.Seq, 10)
	if m.Redelivered && r.answered(ctx, to) {
		r.log.Info("redelivered scheduled command answered already; not run again", "id", id)
		m.Done(nil)
		return
	}
	desc := m.Header.Get(durable.HeaderScheduleDesc)
	r.run(ctx, m, to, ev, func(ctx context.Context) *chatopsv1.Event {
		return r.runScheduled(ctx, ev, id, desc, def, repeating)
	})
}

// finalSubject is where the final answer to m goes: the reply subject to,
// or, for a command a schedule fired, the outbound subject beside it.
func finalSubject(m *inbound.Message, to string) string {
	if strings.HasPrefix(m.Subject, durable.ScheduleFirePrefix) {
		return durable.OutboundSubject(to)
	}
	return to
}

// scheduleExists reports whether the schedule on subject is still there;
// when it cannot tell, it says yes.
func (r *Router) scheduleExists(ctx context.Context, subject string) bool {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := r.sched.GetLastMsgForSubject(gctx, subject)
	return !errors.Is(err, jetstream.ErrMsgNotFound)
}

// runScheduled runs a scheduled command as its author, checking the
// policy again: a user who may no longer run it is told so, and a
// repeating schedule of theirs is removed.
func (r *Router) runScheduled(ctx context.Context, ev *chatopsv1.Event, id, desc, def string, repeating bool) *chatopsv1.Event {
	start := r.now()
	out := outcome{scheduled: true}
	rep := r.handle(ctx, ev, &out, false)
	r.recordAudit(ev, out, start)
	head := fmt.Sprintf("schedule %s (%s: `%s`)", id, desc, truncate(string(ev.GetData()), 120))
	if out.status == audit.StatusDenied {
		text := fmt.Sprintf("%s: you may no longer run %q here (policy: %s)", head, cmpOr(out.name, out.command), out.rule)
		if repeating && def != "" {
			if err := r.removeSchedule(ctx, def, id); err != nil {
				r.log.Error("removing the schedule of a user who lost the right", "id", id, "err", err)
				text += "; remove the schedule with unschedule " + id
			} else {
				text += ", so the schedule is removed"
			}
		}
		return r.errorReply(ev, text)
	}
	rep.Data = []byte(r.capReply(head + ":\n" + string(rep.GetData())))
	return rep
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
