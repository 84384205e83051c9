package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/parse"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"google.golang.org/protobuf/proto"
)

// Notifications. "watch greeter" tells the conversation when greeter
// loses its last node, when it comes back and when its node count
// changes; "watch commands" when a command service is added or removed.
// The watch list lives in the KV bucket durable.WatchBucket, with what was
// last seen of each watched thing. Every router looks at the watched
// things every watchEvery; one that sees a change (twice, confirmAfter
// apart: a registry query can miss a busy node) posts the announcement
// through the outbound path (sdk/durable/outbound.go) under message ids
// named for the change (the seen value's revision and the new value), then
// moves the seen value from what it read to what it saw, at the revision
// it read. Every router that sees one change posts the same ids, which the
// reply stream keeps once (its duplicate window is 2 minutes), and a
// router that dies between the two steps leaves the change to the next.
// So a change is announced once however many routers run, and the watch
// list survives restarts.
//
// "watch greeter health [N]" tells the conversation when greeter's health
// fails N times in a row and when it recovers (watch_health.go).

// Watch command words.
const (
	cmdWatch    = "watch"
	cmdUnwatch  = "unwatch"
	cmdWatching = "watching"
)

// watchCommands is what "watch commands" watches.
const watchCommands = "commands"

// How often routers look at the watched things, and how long after a
// change they look again before they believe it.
const (
	watchEvery   = 2 * time.Second
	confirmAfter = 300 * time.Millisecond
)

// maxWatches bounds the watches of one conversation.
const maxWatches = 50

// watchHelp are help's lines for the watch commands, by the name policies
// give them.
var watchHelp = []struct{ name, line string }{
	{cmdWatch, "watch SERVICE [health] [N] - Tells this conversation when SERVICE's nodes come and go; with health, when its health fails N times in a row (default 3) and when it recovers (watch commands: command services added and removed)"},
	{cmdUnwatch, "unwatch SERVICE [health] - Stops watching SERVICE (with health: its health)"},
	{cmdWatching, "watching - Lists what this conversation watches"},
}

// isWatching reports whether word starts one of the watch commands.
func isWatching(word string) bool {
	return strings.EqualFold(word, cmdWatch) || strings.EqualFold(word, cmdUnwatch) || strings.EqualFold(word, cmdWatching)
}

// watches is the routers' shared watch list.
type watches struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
	cl client.Client // for health checks: no directory, no retries
}

// startWatches opens the watch list and looks at the watched things until
// ctx ends; the returned func stops that and waits for it.
func (r *Router) startWatches(ctx context.Context) func() {
	js, err := jetstream.New(r.m.NATS())
	if err != nil {
		return func() {}
	}
	sctx, cancel := context.WithTimeout(ctx, durable.SetupTimeout)
	var kv jetstream.KeyValue
	err = durable.Setup(sctx, func(ctx context.Context) (err error) {
		kv, err = durable.EnsureWatches(ctx, js, r.cfg.JetStream.Stream.Replicas)
		return err
	})
	cancel()
	if err != nil {
		r.log.Warn("no watches: the watch list could not be opened", "err", err)
		return func() {}
	}
	r.watch = &watches{kv: kv, js: js, cl: r.m.NewClient()}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.watchLoop(wctx)
	}()
	return func() {
		stop()
		<-done
	}
}

// watchTarget returns what "watch NAME" watches: "commands" or
// "service:NAME".
func watchTarget(name string) string {
	if strings.EqualFold(name, watchCommands) {
		return watchCommands
	}
	return "service:" + name
}

// targetName is how a target is shown.
func targetName(target string) string {
	if target == watchCommands {
		return "the command services"
	}
	if service, ok := healthService(target); ok {
		return "the health of " + service
	}
	return strings.TrimPrefix(target, "service:")
}

func targetKey(target string) string { return durable.ScheduleKey("watch", target) }

func watchKey(tk, conv string) string { return durable.WatchKeyPrefix + tk + "." + conv }

// watchCommand answers watch, unwatch and watching.
func (r *Router) watchCommand(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, out *outcome) *chatopsv1.Event {
	verb := strings.ToLower(msg.Words[0])
	if refused := r.refuseSpeakFirst(ev, verb, out, "a schedule cannot change watches"); refused != nil {
		return refused
	}
	if r.watch == nil {
		out.status = audit.StatusError
		return r.errorReply(ev, "watches are not available: the NATS server has no JetStream")
	}
	if !chatopsv1.ValidReplySubject(ev.GetReplyTo()) || !r.schedulesOn(ev.GetPlatform()) {
		out.status = audit.StatusRejected
		return r.errorReply(ev, fmt.Sprintf("watches are not available on %s: its gateway would not post the announcements", ev.GetPlatform()))
	}
	wctx, cancel := context.WithTimeout(ctx, scheduleTimeout)
	defer cancel()
	var rep *chatopsv1.Event
	switch verb {
	case cmdWatch:
		rep = r.addWatch(wctx, ev, msg)
	case cmdUnwatch:
		rep = r.removeWatch(wctx, ev, msg)
	default:
		rep = r.listWatches(wctx, ev, msg)
	}
	if out.status == "" {
		out.status = audit.StatusOK
		if rep.GetType() == chatopsv1.EventType_EVENT_TYPE_ERROR {
			out.status = audit.StatusRejected
		}
	}
	return rep
}

// addWatch adds a watch of this conversation.
func (r *Router) addWatch(ctx context.Context, ev *chatopsv1.Event, msg parse.Message) *chatopsv1.Event {
	if len(msg.Words) < 2 || len(msg.Words) > 2 && !strings.EqualFold(msg.Words[2], healthWord) || len(msg.Words[1]) > 200 {
		return r.errorReply(ev, watchUsage)
	}
	target, after := watchTarget(msg.Words[1]), 0
	if len(msg.Words) > 2 {
		if target == watchCommands {
			return r.errorReply(ev, "watch commands has no health: watch SERVICE health [N] watches one service's health")
		}
		n, bad := parseHealthAfter(msg.Words[3:])
		if bad != "" {
			return r.errorReply(ev, bad)
		}
		target, after = healthTarget(msg.Words[1]), n
	}
	if n, err := r.countWatches(ctx, convKey(ev)); err != nil {
		r.log.Error("counting watches", "err", err)
		return r.errorReply(ev, "the watch list cannot be read right now: try again later")
	} else if n >= maxWatches {
		return r.errorReply(ev, fmt.Sprintf("this conversation watches %d things, the most it may: unwatch one first", n))
	}
	var seen, why string
	var err error
	if after > 0 {
		var ok bool
		ok, why, err = r.lookAtHealth(ctx, msg.Words[1])
		seen = string(healthSeen{}.encode()) // the count starts at the next check
		if ok {
			why = "healthy now"
		} else {
			why = "not healthy now: " + why
		}
	} else {
		seen, err = r.lookAt(ctx, target)
	}
	if err != nil {
		r.log.Error("looking at a service to watch", "target", target, "err", err)
		return r.errorReply(ev, "the registry cannot be read right now: nothing watched, try again later")
	}
	def := proto.Clone(ev).(*chatopsv1.Event)
	def.Data = []byte(target)
	if after > 0 {
		if def.Meta == nil {
			def.Meta = map[string]string{}
		}
		def.Meta[healthAfterMeta] = strconv.Itoa(after)
	}
	data, err := proto.Marshal(def)
	if err != nil {
		return r.errorReply(ev, "nothing watched: "+err.Error())
	}
	tk := targetKey(target)
	if _, err := r.watch.kv.Create(ctx, watchKey(tk, convKey(ev)), data); errors.Is(err, jetstream.ErrKeyExists) {
		return r.errorReply(ev, fmt.Sprintf("this conversation watches %s already (watching lists what it watches)", targetName(target)))
	} else if err != nil {
		r.log.Error("storing a watch", "err", err)
		return r.errorReply(ev, "the watch could not be stored: nothing watched, try again later")
	}
	// What is seen now is the start: only changes from it are told.
	if _, err := r.watch.kv.Create(ctx, durable.WatchSeenKey+tk, []byte(seen)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		r.log.Warn("storing what a watch sees first", "err", err)
	}
	r.log.Info("watch set", "target", target, "platform", ev.GetPlatform(), "user", ev.GetFrom().GetId())
	if target == watchCommands {
		return r.reply(ev, fmt.Sprintf("watching the command services (%s now): this conversation is told when one is added or removed. To stop: unwatch commands", describeCommands(seen)))
	}
	if after > 0 {
		name := msg.Words[1]
		return r.reply(ev, fmt.Sprintf("watching the health of %s (%s; checked every %s): this conversation is told when it fails %s and when it recovers. To stop: unwatch %s health",
			name, why, r.healthEvery(), timesInARow(after), name))
	}
	name := targetName(target)
	return r.reply(ev, fmt.Sprintf("watching %s (%s now): this conversation is told when it loses its last node, when it comes back and when its node count changes. To stop: unwatch %s", name, nodes(seen), name))
}

// removeWatch removes a watch of this conversation.
func (r *Router) removeWatch(ctx context.Context, ev *chatopsv1.Event, msg parse.Message) *chatopsv1.Event {
	if len(msg.Words) != 2 && (len(msg.Words) != 3 || !strings.EqualFold(msg.Words[2], healthWord)) {
		return r.errorReply(ev, "usage: unwatch SERVICE, unwatch SERVICE health, or unwatch commands (watching lists what this conversation watches)")
	}
	target := watchTarget(msg.Words[1])
	if len(msg.Words) == 3 {
		target = healthTarget(msg.Words[1])
	}
	key := watchKey(targetKey(target), convKey(ev))
	if _, err := r.watch.kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
		return r.errorReply(ev, fmt.Sprintf("this conversation does not watch %s (watching lists what it watches)", targetName(target)))
	} else if err != nil {
		r.log.Error("reading a watch", "err", err)
		return r.errorReply(ev, "the watch list cannot be read right now: try again later")
	}
	if err := r.watch.kv.Delete(ctx, key); err != nil {
		r.log.Error("removing a watch", "err", err)
		return r.errorReply(ev, "the watch could not be removed right now: try again later")
	}
	if _, ok := healthService(target); ok {
		r.forgetHealth(ctx, target)
	}
	r.log.Info("watch removed", "target", target, "platform", ev.GetPlatform(), "user", ev.GetFrom().GetId())
	return r.reply(ev, "stopped watching "+targetName(target))
}

// watchUsage is the answer to a watch command that is not one.
const watchUsage = "usage: watch SERVICE (its nodes), watch SERVICE health [N] (told when its health fails N times in a row, default 3), or watch commands (command services added and removed)"

// timesInARow says n failures in a row.
func timesInARow(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times in a row", n)
}

// forgetHealth removes what was seen of a health target that no
// conversation watches any more, so that a later watch counts from 0.
func (r *Router) forgetHealth(ctx context.Context, target string) {
	tk := targetKey(target)
	if keys, err := r.watchKeys(ctx, durable.WatchKeyPrefix+tk+".*"); err != nil || len(keys) > 0 {
		return // watched still, or unknown
	}
	_ = r.watch.kv.Delete(ctx, durable.WatchSeenKey+tk)
}

// watchKeys returns the keys of the watch list that match filter.
func (r *Router) watchKeys(ctx context.Context, filter string) ([]string, error) {
	l, err := r.watch.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, err
	}
	defer func() { _ = l.Stop() }()
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys, ctx.Err()
}

// convWatches returns the watch keys of conversation conv.
func (r *Router) convWatches(ctx context.Context, conv string) ([]string, error) {
	return r.watchKeys(ctx, durable.WatchKeyPrefix+"*."+conv)
}

func (r *Router) countWatches(ctx context.Context, conv string) (int, error) {
	keys, err := r.convWatches(ctx, conv)
	return len(keys), err
}

// listWatches lists what this conversation watches.
func (r *Router) listWatches(ctx context.Context, ev *chatopsv1.Event, msg parse.Message) *chatopsv1.Event {
	if len(msg.Words) > 1 {
		return r.errorReply(ev, "usage: watching (lists what this conversation watches)")
	}
	keys, err := r.convWatches(ctx, convKey(ev))
	if err != nil {
		r.log.Error("listing watches", "err", err)
		return r.errorReply(ev, "the watch list cannot be read right now: try again later")
	}
	var lines []string
	for _, key := range keys {
		e, err := r.watch.kv.Get(ctx, key)
		if err != nil {
			continue // removed meanwhile
		}
		set := &chatopsv1.Event{}
		if proto.Unmarshal(e.Value(), set) != nil {
			continue
		}
		target := string(set.GetData())
		line := targetName(target)
		if s, err := r.watch.kv.Get(ctx, durable.WatchSeenKey+targetKey(target)); err == nil {
			if _, ok := healthService(target); ok {
				line += " (" + describeHealth(decodeHealthSeen(s.Value()), healthAfter(set)) + ")"
			} else if target == watchCommands {
				line += " (" + describeCommands(string(s.Value())) + ")"
			} else {
				line += " (" + nodes(string(s.Value())) + ")"
			}
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return r.reply(ev, "this conversation watches nothing. watch SERVICE tells it when SERVICE's nodes come and go; watch SERVICE health, when SERVICE's health fails 3 times in a row; watch commands, when command services are added or removed.")
	}
	sort.Strings(lines)
	return r.reply(ev, "this conversation watches: "+strings.Join(lines, ", "))
}

// nodes shows a seen node count.
func nodes(seen string) string {
	if seen == "1" {
		return "1 node"
	}
	return seen + " nodes"
}

// describeCommands shows the seen command services.
func describeCommands(seen string) string {
	if seen == "" {
		return "none"
	}
	return strings.ReplaceAll(seen, ",", ", ")
}

// lookAt returns what is seen of target now: its node count, or the
// command services' names (sorted, comma-separated).
func (r *Router) lookAt(_ context.Context, target string) (string, error) {
	reg := r.m.Registry()
	if target == watchCommands {
		services, err := reg.ListServices()
		if err != nil {
			return "", err
		}
		prefix := r.m.Namespace() + "."
		var names []string
		for _, s := range services {
			if name, ok := strings.CutPrefix(s.Name, prefix); ok && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		return strings.Join(names, ","), nil
	}
	services, err := reg.GetService(strings.TrimPrefix(target, "service:"))
	if errors.Is(err, registry.ErrNotFound) {
		return "0", nil
	}
	if err != nil {
		return "", err
	}
	n := 0
	for _, s := range services {
		n += len(s.Nodes)
	}
	return strconv.Itoa(n), nil
}

// watchLoop keeps the watched targets (from the bucket's w. keys) and
// looks at them every watchEvery until ctx ends.
func (r *Router) watchLoop(ctx context.Context) {
	targets := map[string]map[string]bool{} // target → its watch keys
	var updates <-chan jetstream.KeyValueEntry
	var kw jetstream.KeyWatcher
	defer func() {
		if kw != nil {
			_ = kw.Stop()
		}
	}()
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	// Health targets are read every quarter interval: a check is due when
	// the seen value has not changed for the interval.
	htick := time.NewTicker(max(r.healthEvery()/4, 50*time.Millisecond))
	defer htick.Stop()
	looks := &healthLooks{m: map[string]*healthLook{}}
	defer looks.wg.Wait()
	for {
		if kw == nil && r.m.NATS().IsConnected() {
			w, err := r.watch.kv.Watch(ctx, durable.WatchKeyPrefix+">")
			if err != nil {
				r.log.Debug("watch list not readable yet", "err", err)
			} else {
				kw, updates = w, w.Updates()
			}
		}
		// A ticker nobody waits on does not fire: with no watches, an idle
		// router is not woken to look at nothing.
		var tickC, htickC <-chan time.Time
		for target := range targets {
			if _, ok := healthService(target); ok {
				htickC = htick.C
			} else {
				tickC = tick.C
			}
		}
		select {
		case <-ctx.Done():
			return
		case e, ok := <-updates:
			if !ok {
				kw, updates = nil, nil
				continue
			}
			if e == nil {
				continue // the end of what was there
			}
			r.noteWatch(targets, e)
		case <-tickC:
			if !r.m.NATS().IsConnected() {
				continue
			}
			for target := range targets {
				if _, ok := healthService(target); !ok {
					r.checkTarget(ctx, target)
				}
			}
		case <-htickC:
			if !r.m.NATS().IsConnected() {
				continue
			}
			for target := range targets {
				if _, ok := healthService(target); ok {
					r.pollHealth(ctx, looks, target)
				}
			}
		}
	}
}

// noteWatch records a change of the watch list.
func (r *Router) noteWatch(targets map[string]map[string]bool, e jetstream.KeyValueEntry) {
	key := e.Key()
	for target, keys := range targets {
		if keys[key] {
			delete(keys, key)
			if len(keys) == 0 {
				delete(targets, target)
			}
		}
	}
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	set := &chatopsv1.Event{}
	if err := proto.Unmarshal(e.Value(), set); err != nil {
		return
	}
	target := string(set.GetData())
	if targets[target] == nil {
		targets[target] = map[string]bool{}
	}
	targets[target][key] = true
}

// checkTarget looks at target and, when it changed and this router is
// the one that records the change, tells the conversations that watch it.
func (r *Router) checkTarget(ctx context.Context, target string) {
	cctx, cancel := context.WithTimeout(ctx, scheduleTimeout)
	defer cancel()
	tk := targetKey(target)
	key := durable.WatchSeenKey + tk
	var prev string
	var rev uint64
	e, err := r.watch.kv.Get(cctx, key)
	switch {
	case err == nil:
		prev, rev = string(e.Value()), e.Revision()
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return
	}
	now, err := r.lookAt(cctx, target)
	if err != nil || rev != 0 && now == prev {
		return
	}
	select {
	case <-cctx.Done():
		return
	case <-time.After(confirmAfter):
	}
	if again, err := r.lookAt(cctx, target); err != nil || again != now {
		return
	}
	if rev == 0 {
		_, _ = r.watch.kv.Create(cctx, key, []byte(now))
		return
	}
	// Announce first, then record: a router that dies in between leaves
	// the change to the next one that sees it, whose announcement has the
	// same message ids (the change from revision rev to now), which the
	// reply stream stores once; so does every router that sees the change
	// at the same time.
	change := strconv.FormatUint(rev, 10) + "-" + durable.ScheduleKey(now)[:6]
	text := describeChange(target, prev, now)
	if !r.announce(cctx, target, tk, change, func(*chatopsv1.Event) string { return text }) {
		return // the next look tries again
	}
	if _, err := r.watch.kv.Update(cctx, key, []byte(now), rev); err == nil {
		r.log.Info("watched service changed", "target", target, "was", prev, "now", now)
	}
}

// describeChange says what changed of target.
func describeChange(target, prev, now string) string {
	if target == watchCommands {
		was, is := splitNames(prev), splitNames(now)
		var parts []string
		if added := minus(is, was); len(added) > 0 {
			parts = append(parts, "new command service: "+strings.Join(added, ", "))
		}
		if removed := minus(was, is); len(removed) > 0 {
			parts = append(parts, "command service removed: "+strings.Join(removed, ", "))
		}
		return "watch: " + strings.Join(parts, "; ")
	}
	name := targetName(target)
	p, _ := strconv.Atoi(prev)
	n, _ := strconv.Atoi(now)
	switch {
	case n == 0:
		return fmt.Sprintf("watch: %s lost its last node (it had %s): it is down", name, nodes(prev))
	case p == 0:
		return fmt.Sprintf("watch: %s is back: %s", name, nodes(now))
	default:
		return fmt.Sprintf("watch: %s now has %s (it had %s)", name, nodes(now), nodes(prev))
	}
}

func splitNames(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// minus returns the names of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// announce posts text(the watch) to every conversation that watches
// target (but those whose text is ""), through the outbound path; its
// message ids (from change) make every announcement of one change stored
// once. It reports whether every conversation's is stored.
func (r *Router) announce(ctx context.Context, target, tk, change string, text func(*chatopsv1.Event) string) bool {
	keys, err := r.watchKeys(ctx, durable.WatchKeyPrefix+tk+".*")
	if err != nil {
		r.log.Error("announcing a change: the watch list cannot be read", "target", target, "err", err)
		return false
	}
	ok := true
	for _, key := range keys {
		e, err := r.watch.kv.Get(ctx, key)
		if err != nil {
			continue
		}
		set := &chatopsv1.Event{}
		if proto.Unmarshal(e.Value(), set) != nil || !chatopsv1.ValidReplySubject(set.GetReplyTo()) {
			continue
		}
		said := text(set)
		if said == "" {
			continue
		}
		platform := chatopsv1.ReplyPlatform(set.GetReplyTo())
		instance := strings.Split(strings.TrimPrefix(set.GetReplyTo(), chatopsv1.SubjectOutPrefix), ".")[1]
		conv := key[strings.LastIndexByte(key, '.')+1:]
		token := "w" + tk[:8] + "-" + change + "-" + conv[:8]
		subject := durable.OutboundSubject(chatopsv1.ReplySubject(platform, instance, token))
		rep := r.reply(set, said)
		rep.InReplyTo = "watch-" + token
		data, err := proto.Marshal(rep)
		if err != nil {
			continue
		}
		if err := r.ensureOut(ctx, r.watch.js, platform); err != nil {
			r.log.Warn("reply stream not set up; announcing anyway", "platform", platform, "err", err)
		}
		if _, err := durable.Publish(ctx, r.watch.js, &nats.Msg{Subject: subject, Header: durable.ReplyHeader(subject), Data: data}); err != nil {
			r.log.Error("announcement not stored", "target", target, "subject", subject, "err", err)
			ok = false
		}
	}
	return ok
}
