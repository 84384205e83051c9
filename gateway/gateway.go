// Package gateway bridges chat platforms and the mesh. For each message an
// input receives it publishes an Event on bot.v1.in.<platform>, with a reply
// subject of its own (bot.v1.out.<instance>.<n>), and hands the reply that
// comes back to the input to post where the message came from.
//
// The gateway answers every message: with the router's reply, or with a
// clear error when the message is refused (too long), when no router is
// running (NATS reports no responders), or when no reply comes in time.
package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config tunes a gateway.
type Config struct {
	// Instance names this gateway process; replies come back on
	// bot.v1.out.<Instance>.>. Empty means "<host>-<random>"; it must be
	// unique among running gateways.
	Instance string
	// ReplyTimeout is how long to wait for a reply before telling the user
	// that none came. Keep it above the routers' --timeout.
	ReplyTimeout time.Duration
	// MaxMessageBytes is the longest message passed on; longer ones are
	// refused with an explanation.
	MaxMessageBytes int
	// ShutdownGrace is how long Run waits, after its context ends, for
	// replies to messages already sent.
	ShutdownGrace time.Duration
	// Delivery is how messages reach the routers: "jetstream" (stored in
	// the routers' stream until answered; a redelivery is stored once) or
	// "core" (core NATS: at most once, lowest latency). It must match the
	// routers'.
	Delivery string
	// PublishTimeout bounds how long a message is offered to the mesh
	// (JetStream delivery): a publish the stream does not acknowledge, while
	// NATS reconnects or a stream elects its leader, is tried again with
	// the same message id until then. Only then is the user told.
	PublishTimeout time.Duration
	// DedupWindow is how long an event id is remembered: an event whose id
	// was taken within the window (a platform's redelivery) is dropped.
	// Replicas share the memory through JetStream when the NATS server has
	// it. Negative turns de-duplication off. With JetStream delivery the
	// stream does it instead, for its duplicate window (10 min).
	DedupWindow time.Duration
	// AdoptAfter is how long a sibling gateway of the same platform must
	// not answer before this one posts the replies to the messages it had
	// taken (inputs whose conversations any replica can post to: Slack,
	// XMPP, IRC; JetStream delivery). Negative turns it off.
	AdoptAfter time.Duration
	// NoOutbound leaves what the bot posts unasked (scheduled results,
	// notifications) to other gateways: for one that exits after its
	// answers (botctl). Otherwise, with JetStream delivery, each input
	// reads its outbound consumer (outbound.go).
	NoOutbound bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ReplyTimeout:    40 * time.Second,
		MaxMessageBytes: 64 << 10,
		ShutdownGrace:   10 * time.Second,
		DedupWindow:     10 * time.Minute,
		Delivery:        durable.JetStream,
		PublishTimeout:  30 * time.Second,
		AdoptAfter:      10 * time.Second,
	}
}

// RegisterFlags adds the gateway's flags to fs, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Instance, "instance", c.Instance, "unique name of this gateway process (default: host name and a random suffix)")
	fs.DurationVar(&c.ReplyTimeout, "reply_timeout", c.ReplyTimeout, "how long to wait for a reply before telling the user none came (keep above the router's --timeout)")
	fs.IntVar(&c.MaxMessageBytes, "max_message_bytes", c.MaxMessageBytes, "longest message passed on to the mesh, in bytes")
	fs.DurationVar(&c.ShutdownGrace, "shutdown_grace", c.ShutdownGrace, "on SIGTERM, how long to wait for replies to messages already sent")
	fs.StringVar(&c.Delivery, "delivery", c.Delivery, "how messages reach the routers: jetstream (durable) or core (at most once); must match the routers'")
	fs.DurationVar(&c.PublishTimeout, "publish_timeout", c.PublishTimeout, "jetstream: how long a message is offered to the mesh while NATS does not acknowledge it (a restart, a leader election) before the user is told")
	fs.DurationVar(&c.AdoptAfter, "adopt_after", c.AdoptAfter, "jetstream, slack/xmpp/irc: how long another gateway of the same platform must be unreachable before this one posts the replies to the messages it had taken (negative: never)")
	fs.DurationVar(&c.DedupWindow, "dedup_window", c.DedupWindow, "how long event ids are remembered to drop platform redeliveries, with core delivery (negative: off; with jetstream the stream drops them for 10m)")
}

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.ReplyTimeout <= 0 {
		c.ReplyTimeout = d.ReplyTimeout
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = d.ShutdownGrace
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = d.PublishTimeout
	}
	if c.AdoptAfter == 0 {
		c.AdoptAfter = d.AdoptAfter
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = d.DedupWindow
	}
	if c.Delivery == "" {
		c.Delivery = d.Delivery
	}
	if err := durable.ValidDelivery(c.Delivery); err != nil {
		return c, fmt.Errorf("gateway: %w", err)
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		host = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
				return r
			}
			return '-'
		}, host)
		if host == "" {
			host = "gw"
		}
		c.Instance = host + "-" + strings.ToLower(nuid.Next()[14:])
	}
	if !chatopsv1.ValidToken(c.Instance) {
		return c, fmt.Errorf("gateway: instance %q must be one NATS subject token (no dots, spaces or wildcards)", c.Instance)
	}
	return c, nil
}

// Gateway runs inputs against the mesh.
type Gateway struct {
	cfg    Config
	nc     *nats.Conn
	log    *slog.Logger
	inputs []*running

	metrics *metrics
	dedup   deduper             // nil: off
	js      jetstream.JetStream // nil with core delivery
	routers routerPing
	mu      sync.Mutex
	pending map[string]*pending // by reply token
	// firstPending gets a signal (one slot) when pending stops being
	// empty: watchReplies sleeps without a timer while nothing is pending.
	firstPending chan struct{}
	// posting holds the replies being posted, by token: done when
	// posted.
	posting map[string]*post
	// answered holds the tokens whose final reply was posted, and by whom,
	// so that a second reply to one message (a router redelivery) is
	// dropped while a late reply after a timeout notice is still posted.
	answered *recent
	// started is closed once Run has started every input.
	started chan struct{}
}

// running is one input.
type running struct {
	in     adapter.Input
	out    chan delivery  // replies to post, in order
	wg     sync.WaitGroup // messages awaiting their final reply
	closed chan struct{}  // closed when the input's sender stops
}

// delivery is a reply to post; final ones end a message's wait.
type delivery struct {
	ev    *chatopsv1.Event
	final bool
	// token and post, for a router's reply: post is done once it is
	// posted (a consumer's copy is acknowledged then).
	token string
	post  *post
}

// post is a router's reply or outbound message on its way to the input:
// done is closed once the input's Send returned, and err (read after
// done) is what Send returned.
type post struct {
	done chan struct{}
	err  error
}

func newPost() *post { return &post{done: make(chan struct{})} }

type pending struct {
	sent  time.Time
	ev    *chatopsv1.Event
	r     *running
	timer *time.Timer // the final timeout
	check *time.Timer // is a router there? (JetStream delivery)
	// working: a router said it works on the message (a progress note).
	working bool
	// stored: the stream acknowledged the message.
	stored bool
	// checked is when the reply stream was last asked for its reply.
	checked time.Time
}

// New returns a gateway for inputs (already Init'ed) on nc.
func New(nc *nats.Conn, inputs []adapter.Input, cfg Config, log *slog.Logger) (*Gateway, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{metrics: newMetrics(), cfg: cfg, nc: nc, log: log.With("component", "gateway", "instance", cfg.Instance), pending: map[string]*pending{}, firstPending: make(chan struct{}, 1), posting: map[string]*post{}, started: make(chan struct{}), answered: newRecent(cfg.ReplyTimeout + 10*time.Minute)}
	names := map[string]bool{}
	for _, in := range inputs {
		if !chatopsv1.ValidToken(in.String()) || names[in.String()] {
			return nil, fmt.Errorf("gateway: input name %q is not a unique subject token", in.String())
		}
		names[in.String()] = true
		g.inputs = append(g.inputs, &running{in: in, out: make(chan delivery, 256), closed: make(chan struct{})})
	}
	if nc == nil {
		return nil, errors.New("gateway: no NATS connection")
	}
	if cfg.Delivery == durable.JetStream {
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(ackTimeout))
		if err != nil {
			return nil, fmt.Errorf("gateway: jetstream: %w", err)
		}
		g.js = js
	}
	return g, nil
}

// Started is closed once Run has started every input (a web chat listens
// then); if an input fails to start, it stays open and Run returns why.
func (g *Gateway) Started() <-chan struct{} { return g.started }

// Instance returns the gateway's instance name.
func (g *Gateway) Instance() string { return g.cfg.Instance }

// Run starts the inputs and relays messages until ctx is done or every
// input has ended (the shell at end of input); in both cases it waits for
// the replies to messages already sent (at most the reply timeout, or the
// shutdown grace after ctx ends) before it returns.
func (g *Gateway) Run(ctx context.Context) error {
	for _, r := range g.inputs {
		sub, err := g.nc.Subscribe(chatopsv1.SubjectOut(r.in.String(), g.cfg.Instance), g.onReply)
		if err != nil {
			return fmt.Errorf("gateway: subscribe to replies: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := sub.SetPendingLimits(-1, 256<<20); err != nil {
			return fmt.Errorf("gateway: pending limits: %w", err)
		}
	}
	if err := g.nc.Flush(); err != nil {
		g.log.Warn("NATS not reachable yet; replies will flow once it is", "err", err)
	}
	switch {
	case g.cfg.DedupWindow <= 0:
	case g.js != nil:
		// Each message goes into the stream with its event id as message
		// id, and the stream acknowledges a repeated id within its
		// duplicate window as a duplicate (confirm drops it): one write
		// per message instead of two.
		g.log.Debug("de-duplication", "store", "stream "+durable.Stream, "window", durable.DefaultStreamConfig().DuplicateWindow)
	default:
		d, err := newDeduper(ctx, g.nc, g.cfg.DedupWindow)
		if err != nil {
			g.log.Info("de-duplication in this process only", "reason", err)
		}
		g.dedup = d
		g.log.Debug("de-duplication", "store", d.String(), "window", g.cfg.DedupWindow)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if g.js != nil {
		var watchers sync.WaitGroup
		watchers.Go(func() { g.watchReplies(runCtx) })
		tried := make(chan struct{}, len(g.inputs))
		for _, r := range g.inputs {
			if shared(r) {
				watchers.Go(func() { g.keepReplies(runCtx, r) })
			}
			if !g.cfg.NoOutbound {
				watchers.Go(func() { g.keepOutbound(runCtx, r, tried) })
			}
		}
		defer func() {
			cancel()
			watchers.Wait()
		}()
		if !g.cfg.NoOutbound {
			// The outbound consumers first: a message taken before its
			// platform's consumer exists could be refused (outbound.go).
			g.awaitOutbound(runCtx, tried, len(g.inputs))
		}
	}
	errc := make(chan error, len(g.inputs))
	var wg sync.WaitGroup
	for _, r := range g.inputs {
		if st, ok := r.in.(adapter.Starter); ok {
			if err := st.Start(runCtx); err != nil {
				// The inputs started so far stop with runCtx.
				cancel()
				wg.Wait()
				for _, o := range g.inputs {
					close(o.closed)
				}
				return fmt.Errorf("gateway: start %s: %w", r.in, err)
			}
		}
		go g.send(r)
		wg.Go(func() { errc <- g.relay(runCtx, r) })
		g.log.Info("input started", "input", r.in.String())
	}
	close(g.started)

	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	var errs []error
	select {
	case <-allDone:
	case <-ctx.Done():
		// runCtx ends with ctx: every input stops (adapter.StopGrace for
		// its queued replies) and its relay waits for the replies still
		// expected, all within the grace.
		g.log.Info("gateway stopping", "grace", g.cfg.ShutdownGrace)
		grace := time.NewTimer(g.cfg.ShutdownGrace)
		select {
		case <-allDone:
		case <-grace.C:
			errs = append(errs, errors.New("gateway: inputs did not stop within the grace"))
		}
		grace.Stop()
	}
	// An input that did not stop within the grace may still report: errc
	// has room for every input, and is read without waiting.
	for len(errc) > 0 {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range g.inputs {
		close(r.closed)
	}
	g.forgetPending()
	return errors.Join(errs...)
}

// forgetPending stops waiting for the replies still expected when Run
// ends: no input is there to post them or a timeout note (a sibling
// gateway posts the replies of a shared platform), and no timer of a
// stopped gateway may fire later.
func (g *Gateway) forgetPending() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for token, p := range g.pending {
		g.untrack(token, p)
	}
}

// pipelineDepth bounds the messages of one input that are between Recv and
// their stream acknowledgement. The relay does not wait for one message's
// de-duplication check and acknowledgement (each a NATS round trip) before
// it takes the next: a busy input (one Slack workspace) is not limited to
// one message per round trip, and the messages still reach the routers in
// the order the input gave them.
const pipelineDepth = 256

// checking is a message whose de-duplication check is under way.
type checking struct {
	ev  *chatopsv1.Event
	dup func() (bool, error) // nil: not checked
}

// sending is a message published to the stream, awaiting its
// acknowledgement.
type sending struct {
	ev    *chatopsv1.Event
	token string
	msg   *nats.Msg // as published, for a retry
	ack   jetstream.PubAckFuture
}

// relay publishes the input's messages until it ends, then waits for the
// replies it still expects. Three stages, in order: Recv and the
// de-duplication check (here), publishing (publishChecked), and the
// stream's acknowledgements (confirm).
func (g *Gateway) relay(ctx context.Context, r *running) error {
	checked := make(chan checking, pipelineDepth)
	sent := make(chan sending, pipelineDepth)
	var stages sync.WaitGroup
	stages.Go(func() {
		defer close(sent)
		g.publishChecked(r, checked, sent)
	})
	stages.Go(func() { g.confirm(r, sent) })
	emit := func(ctx context.Context, ev *chatopsv1.Event) error {
		// The message awaits its final reply from now on (a duplicate is
		// let go when the check says so).
		r.wg.Add(1)
		c := checking{ev: ev}
		if g.dedup != nil && ev.GetId() != "" {
			c.dup = g.dedup.check(ctx, r.in.String()+"\x00"+ev.GetId())
		}
		select {
		case checked <- c:
			return nil
		case <-ctx.Done():
			r.wg.Done()
			return ctx.Err()
		}
	}
	err := r.in.Run(ctx, emit)
	close(checked)
	stages.Wait()
	wait := g.cfg.ReplyTimeout + time.Second
	if ctx.Err() != nil {
		wait = g.cfg.ShutdownGrace
	}
	g.waitReplies(r, wait)
	switch {
	case err != nil && ctx.Err() == nil:
		return fmt.Errorf("gateway: %s: %w", r.in, err)
	case err != nil:
		g.log.Warn("input stopped", "input", r.in.String(), "err", err)
	case ctx.Err() == nil:
		g.log.Info("input ended", "input", r.in.String())
	}
	return nil
}

func (g *Gateway) publishChecked(r *running, checked <-chan checking, sent chan<- sending) {
	for c := range checked {
		if c.dup != nil && g.duplicate(r, c.ev, c.dup) {
			r.wg.Done()
			continue
		}
		if s, ok := g.publish(r, c.ev); ok && s.ack != nil {
			// confirm takes every acknowledgement, and each comes or
			// times out (ackTimeout): this never blocks for long.
			sent <- s
		}
	}
}

// confirm waits for the stream's acknowledgement of each message and
// answers the user at once when the stream refused it.
func (g *Gateway) confirm(r *running, sent <-chan sending) {
	for s := range sent {
		var err error
		select {
		case pa := <-s.ack.Ok():
			if pa.Duplicate {
				g.dropDuplicate(r, s)
			}
		case err = <-s.ack.Err():
		}
		if err != nil {
			// Not acknowledged: the stream may have it or not. Offer it
			// again, with the same message id, until it is known.
			g.log.Debug("publish not acknowledged; trying again", "event", s.ev.GetId(), "err", err)
			go g.retry(r, s, err)
		}
		if err == nil {
			g.stored(s.token)
		}
	}
}

// duplicate reports whether the platform delivered ev before (same id,
// within the window); such an event is dropped without an answer, since the
// first delivery is answered.
func (g *Gateway) duplicate(r *running, ev *chatopsv1.Event, check func() (bool, error)) bool {
	dup, err := check()
	if err != nil {
		g.log.Warn("de-duplication unavailable; passing the event on", "event", ev.GetId(), "err", err)
		return false
	}
	if dup {
		g.log.Info("duplicate event dropped", "input", r.in.String(), "event", ev.GetId())
		g.metrics.refused.WithLabelValues(r.in.String(), "duplicate").Inc()
	}
	return dup
}

func (g *Gateway) waitReplies(r *running, within time.Duration) {
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(within):
		g.log.Warn("replies still outstanding", "input", r.in.String(), "waited", within)
	}
}

// dropDuplicate lets go of a message the stream already had: a platform's
// redelivery of an event (to this replica or another), whose first
// delivery is answered.
func (g *Gateway) dropDuplicate(r *running, s sending) {
	if p := g.take(s.token); p != nil {
		g.log.Info("duplicate event dropped", "input", r.in.String(), "event", s.ev.GetId())
		g.metrics.refused.WithLabelValues(r.in.String(), "duplicate").Inc()
		r.wg.Done()
	}
}

// publish sends one message to the routers, or answers it at once when it
// cannot be sent. With JetStream delivery the returned sending carries the
// acknowledgement to wait for; ok is false when the message was answered
// already.
func (g *Gateway) publish(r *running, ev *chatopsv1.Event) (s sending, ok bool) {
	if ev.Id == "" {
		ev.Id = nuid.Next()
	}
	ev.Type = chatopsv1.EventType_EVENT_TYPE_MESSAGE
	ev.Platform = r.in.String()
	ev.Gateway = g.cfg.Instance
	if ev.Time == nil {
		ev.Time = timestamppb.Now()
	}
	if n := len(ev.Data); n > g.cfg.MaxMessageBytes {
		g.log.Info("message refused: too long", "input", r.in.String(), "bytes", n)
		g.metrics.refused.WithLabelValues(r.in.String(), "too_long").Inc()
		g.answer(r, ev, fmt.Sprintf("message too long: %d bytes; the limit is %d", n, g.cfg.MaxMessageBytes))
		return s, false
	}
	// A token unique across restarts of an instance of the same name:
	// the reply stream keeps replies by their subject for an hour.
	token := nuid.Next()
	ev.ReplyTo = chatopsv1.ReplySubject(ev.Platform, g.cfg.Instance, token)
	data, err := proto.Marshal(ev)
	if err != nil {
		g.answer(r, ev, "message could not be encoded: "+err.Error())
		return s, false
	}
	p := &pending{ev: ev, r: r, sent: time.Now()}
	g.mu.Lock()
	g.pending[token] = p
	if len(g.pending) == 1 {
		select {
		case g.firstPending <- struct{}{}:
		default:
		}
	}
	p.timer = time.AfterFunc(g.cfg.ReplyTimeout, func() { g.timeout(token) })
	if g.js != nil {
		p.check = time.AfterFunc(queuedAfter, func() { g.checkQueued(token) })
	}
	g.mu.Unlock()
	g.metrics.messages.WithLabelValues(r.in.String()).Inc()
	if g.js == nil {
		msg := &nats.Msg{Subject: chatopsv1.SubjectIn(ev.Platform), Reply: ev.ReplyTo, Data: data}
		if err := g.nc.PublishMsg(msg); err != nil {
			g.log.Warn("publish failed", "event", ev.Id, "err", err)
			g.unreachable(r, ev, token, errors.New(meshDown))
		}
		return s, false
	}
	s = sending{ev: ev, token: token, msg: &nats.Msg{Subject: chatopsv1.SubjectIn(ev.Platform), Header: durable.Header(ev.Platform, ev.Id), Data: data}}
	ack, err := g.js.PublishMsgAsync(s.msg,
		jetstream.WithStallWait(ackTimeout), jetstream.WithRetryWait(publishRetryWait), jetstream.WithRetryAttempts(publishRetries))
	if err != nil {
		g.log.Debug("publish failed; trying again", "event", ev.Id, "err", err)
		go g.retry(r, s, err)
		return s, false
	}
	g.log.Debug("message published", "input", r.in.String(), "event", ev.Id, "token", token)
	s.ack = ack
	return s, true
}

// meshDown is what a user reads when a message could not be handed to the
// mesh at all: it did not run.
const meshDown = "could not reach the mesh: the NATS connection is closed, so your command did not run. Try again in a minute; if this goes on, tell whoever runs botmesh"

// retry offers a message the stream did not acknowledge again, with the
// same message id, until the stream has it or the publish timeout (from
// when it was first sent) passes. Then the user hears what is known: that
// it did not run, or that it is not confirmed yet and its answer will come
// here if it runs.
func (g *Gateway) retry(r *running, s sending, first error) {
	g.mu.Lock()
	p := g.pending[s.token]
	g.mu.Unlock()
	if p == nil {
		return
	}
	if noStream(first) && !g.routers.alive(g.nc) {
		// Nothing stores messages and no router runs to set it up: a
		// first start, or every router gone with the stream.
		g.unreachable(r, s.ev, s.token, errors.New(noRouterNoStream))
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), p.sent.Add(g.cfg.PublishTimeout))
	defer cancel()
	_, err := durable.Publish(ctx, g.js, s.msg)
	switch {
	case err == nil:
		// Stored now, or by an attempt whose acknowledgement was lost
		// (then the stream says Duplicate): either way, a router takes it.
		g.log.Info("message stored after a retry", "event", s.ev.GetId(), "waited", time.Since(p.sent).Round(time.Millisecond))
		g.stored(s.token)
	case errors.Is(err, durable.ErrNotConfirmed):
		g.log.Warn("message not confirmed by the stream; waiting for its answer", "event", s.ev.GetId(), "err", err)
		g.metrics.refused.WithLabelValues(r.in.String(), "not_confirmed").Inc()
		if g.extend(s.token, g.cfg.ReplyTimeout+durable.DefaultStreamConfig().MaxAge) {
			g.deliver(r, g.notice(s.ev, chatopsv1.EventType_EVENT_TYPE_PROGRESS, fmt.Sprintf(
				"not confirmed yet: botmesh's message stream did not confirm your command within %s (NATS may be restarting). I'll post the answer here if it runs; please don't send it again.",
				g.cfg.PublishTimeout)), false)
		}
	case noStream(err) && !g.routers.alive(g.nc):
		g.log.Warn("message not stored", "event", s.ev.GetId(), "err", err)
		g.unreachable(r, s.ev, s.token, errors.New(noRouterNoStream))
	default:
		g.log.Warn("message not stored", "event", s.ev.GetId(), "err", err)
		g.unreachable(r, s.ev, s.token, fmt.Errorf(
			"could not reach the mesh: its message stream did not answer for %s, so your command did not run. Try again in a minute; if this goes on, check that NATS and a router are running",
			g.cfg.PublishTimeout))
	}
}

// noRouterNoStream is what a user reads when the message stream does not
// exist and no router runs: the command did not run.
const noRouterNoStream = "no router is running and botmesh's message stream is not set up, so your command did not run: start a router (or ask whoever runs botmesh) and try again"

// noStream reports whether err says no stream took the message.
func noStream(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}

// stored notes that the stream has the message of token: a router will take
// it, now or when one starts.
func (g *Gateway) stored(token string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.pending[token]; p != nil {
		p.stored = true
	}
}

// extend moves the final timeout of a pending message to at least d from
// now; it reports whether the message is still pending.
func (g *Gateway) extend(token string, d time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pending[token]
	if p == nil {
		return false
	}
	p.timer.Reset(d)
	return true
}

// queuedAfter is when a user whose command no router has taken yet hears
// whether one is running at all.
const queuedAfter = 3 * time.Second

// checkQueued tells the user, when no router runs, that the command waits
// in the stream until one starts, and waits for it as long as the stream
// keeps it.
func (g *Gateway) checkQueued(token string) {
	g.mu.Lock()
	p := g.pending[token]
	waiting := p != nil && !p.working
	if waiting && !p.stored {
		// Not in the stream yet (retry is at it): ask again later.
		p.check.Reset(time.Second)
		waiting = false
	}
	g.mu.Unlock()
	if !waiting || g.routers.alive(g.nc) {
		return
	}
	keep := durable.DefaultStreamConfig().MaxAge
	if g.extend(token, keep+g.cfg.ReplyTimeout) {
		g.metrics.replies.WithLabelValues(p.r.in.String(), "queued").Inc()
		g.deliver(p.r, g.notice(p.ev, chatopsv1.EventType_EVENT_TYPE_PROGRESS, fmt.Sprintf(
			"queued: no router is running right now; your command will run when one starts (it is kept for %s).", keep)), false)
	}
}

// routerPing remembers for a second whether a router answered a ping, so
// that a burst of waiting messages costs one ping.
type routerPing struct {
	mu   sync.Mutex
	at   time.Time
	live bool
}

func (rp *routerPing) alive(nc *nats.Conn) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if time.Since(rp.at) > time.Second {
		rp.live = durable.RoutersAlive(nc, time.Second)
		rp.at = time.Now()
	}
	return rp.live
}

// unreachable answers a message that could not be handed to the routers,
// unless it was answered meanwhile.
func (g *Gateway) unreachable(r *running, ev *chatopsv1.Event, token string, err error) {
	g.metrics.refused.WithLabelValues(r.in.String(), "unreachable").Inc()
	if p := g.take(token); p != nil {
		g.answer(r, ev, err.Error())
	}
}

// ackTimeout bounds the wait for the stream's acknowledgement of a message's
// first attempt; retry tries again after it.
const ackTimeout = 5 * time.Second

// A publish that NATS answers with "no responders" is tried again, every
// publishRetryWait, publishRetries times, before the first attempt counts
// as failed (a stream without a leader answers nothing for a few seconds).
const (
	publishRetryWait = 500 * time.Millisecond
	publishRetries   = 10
)

// take removes and returns the pending message of token, or nil if it was
// answered already.
func (g *Gateway) take(token string) *pending {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pending[token]
	if p != nil {
		g.untrack(token, p)
	}
	return p
}

// untrack ends the wait for the message of token; g.mu is held.
func (g *Gateway) untrack(token string, p *pending) {
	delete(g.pending, token)
	p.timer.Stop()
	if p.check != nil {
		p.check.Stop()
	}
}

func (g *Gateway) timeout(token string) {
	if p := g.take(token); p != nil {
		g.answered.put(token, answeredByTimeout)
		waited := time.Since(p.sent)
		if waited >= 10*time.Second {
			waited = waited.Round(time.Second)
		} else {
			waited = waited.Round(100 * time.Millisecond)
		}
		g.log.Warn("no reply in time", "event", p.ev.Id, "waited", waited)
		g.metrics.replies.WithLabelValues(p.r.in.String(), "timeout").Inc()
		g.answer(p.r, p.ev, fmt.Sprintf("no reply within %s: the mesh may be overloaded or no router is running. If your command still runs, its answer will be posted here.", waited))
	}
}

// onReply takes a reply from NATS: a final reply on
// bot.v1.out.<instance>.<token>, a progress note one token deeper.
func (g *Gateway) onReply(msg *nats.Msg) {
	g.reply(msg.Subject, msg.Data, msg.Header, fromSubscription)
}

// Where a final reply came from.
type source int

const (
	fromSubscription source = iota // the gateway's subscription (live)
	fromLookup                     // looked up in the reply stream (recover)
	fromConsumer                   // the gateway's own consumer of the reply stream
	fromSibling                    // the consumer of a sibling that is gone
)

// reply handles a reply from the subscription or from a look-up in the
// reply stream.
func (g *Gateway) reply(subject string, data []byte, header nats.Header, src source) {
	if durable.IsOutbound(subject) {
		// Posted from the outbound consumer (outbound.go), which the
		// subscription sees too.
		if g.js == nil {
			g.outboundCore(subject, data)
		}
		return
	}
	// bot.v1.out.<platform>.<instance>.<token>[.p]
	token, progress := strings.CutSuffix(subject, ".p")
	token = token[strings.LastIndexByte(token, '.')+1:]
	if len(data) == 0 && header.Get("Status") == "503" {
		// NATS answers "no responders" when nothing subscribes to the
		// inbound subject: no router is running (core delivery).
		if p := g.take(token); p != nil {
			g.metrics.replies.WithLabelValues(p.r.in.String(), "no_router").Inc()
			g.answer(p.r, p.ev, "no router is running, so your command did not run: start a router (or ask whoever runs botmesh) and try again")
		}
		return
	}
	rep := &chatopsv1.Event{}
	if err := proto.Unmarshal(data, rep); err != nil {
		g.log.Warn("dropping malformed reply", "subject", subject, "bytes", len(data), "err", err)
		return
	}
	if progress || rep.GetType() == chatopsv1.EventType_EVENT_TYPE_PROGRESS {
		g.progress(token, rep)
		return
	}
	g.final(nil, token, rep, src, nil)
}

// final posts a router's final reply to the message of token, once: the
// first copy to arrive (from the subscription, a look-up, or a consumer of
// the reply stream) is posted, and later ones are dropped. A consumer's
// copy (m) is acknowledged once the reply is posted, so that a sibling
// posts it if this gateway dies first. in is the input of a consumer's
// platform; rep, if nil, is decoded from m when needed.
func (g *Gateway) final(in *running, token string, rep *chatopsv1.Event, src source, m jetstream.Msg) {
	g.mu.Lock()
	if ps := g.posting[token]; ps != nil {
		// Being posted right now.
		g.mu.Unlock()
		if m != nil {
			go g.ackWhenPosted(in, m, ps)
		}
		return
	}
	p := g.pending[token]
	if p == nil {
		by, ok := g.answered.get(token)
		switch {
		case ok && by == answeredByRouter:
			// Posted already: a router answered it twice (after a
			// redelivery), or this is a consumer's copy.
			g.mu.Unlock()
			if m != nil {
				_ = m.Ack()
			} else if src == fromSubscription {
				g.log.Info("duplicate reply dropped", "subject", token)
				g.metrics.replies.WithLabelValues(g.platformOf(in, rep), "dropped_duplicate").Inc()
			}
			return
		case src == fromLookup:
			g.mu.Unlock()
			return // the subscription had it
		case !ok && src == fromSubscription:
			// Not this process's message (an instance of the same name
			// that restarted): its consumer's copy is posted, if it has
			// one.
			g.mu.Unlock()
			return
		}
	}
	if rep == nil {
		rep = &chatopsv1.Event{}
		if err := proto.Unmarshal(m.Data(), rep); err != nil {
			g.mu.Unlock()
			g.log.Warn("dropping malformed reply", "subject", m.Subject(), "bytes", len(m.Data()), "err", err)
			_ = m.Term()
			return
		}
	}
	r := in
	if p != nil {
		r = p.r
		g.untrack(token, p)
	}
	if r == nil {
		r = g.inputFor(rep.GetPlatform())
	}
	if r == nil {
		g.mu.Unlock()
		return
	}
	ps := newPost()
	g.posting[token] = ps
	g.answered.put(token, answeredByRouter)
	g.mu.Unlock()

	kind := "reply"
	switch {
	case p == nil && src == fromSibling:
		kind = "adopted"
		g.log.Info("posting the reply of a gateway that is gone", "event", rep.GetInReplyTo(), "gateway", rep.GetGateway())
	case p == nil:
		kind = "late"
		g.log.Info("late reply", "event", rep.GetInReplyTo(), "token", token)
	case src != fromSubscription:
		kind = "recovered"
		g.log.Info("reply read from the reply stream", "event", rep.GetInReplyTo(), "waited", time.Since(p.sent).Round(time.Millisecond))
	case rep.GetType() == chatopsv1.EventType_EVENT_TYPE_ERROR:
		kind = "error"
	}
	g.metrics.replies.WithLabelValues(r.in.String(), kind).Inc()
	if p != nil {
		g.observeReply(r, p)
	}
	if m != nil {
		go g.ackWhenPosted(r, m, ps)
	}
	select {
	case r.out <- delivery{ev: rep, final: p != nil, token: token, post: ps}:
	case <-r.closed:
		g.log.Warn("reply after the input stopped; dropped", "event", rep.GetInReplyTo())
	}
}

// ackWhenPosted acknowledges a reply stream's copy of a reply once the reply
// is posted; if the input stops first, the copy stays for a sibling, and
// if the input says it could not post it yet (adapter.ErrNotPosted), it
// is offered again after a pause (notPostedDelay).
func (g *Gateway) ackWhenPosted(r *running, m jetstream.Msg, ps *post) {
	var closed <-chan struct{}
	if r != nil {
		closed = r.closed
	}
	posted := func() {
		if !errors.Is(ps.err, adapter.ErrNotPosted) {
			_ = m.Ack()
			return
		}
		n := uint64(1)
		if md, err := m.Metadata(); err == nil {
			n = md.NumDelivered
		}
		_ = m.NakWithDelay(notPostedDelay(n))
	}
	select {
	case <-ps.done:
		posted()
	case <-closed:
		select {
		case <-ps.done:
			posted()
		default:
			// The input stopped before it posted the message, and
			// will not post it: offered again at once to whoever
			// reads the consumer next, not after the ack wait (a
			// minute).
			_ = m.Nak()
		}
	}
}

// notPostedDelay is how long a message an input could not post yet, at
// its nth delivery, waits for the next: a second after the first, doubling
// up to a minute.
func notPostedDelay(n uint64) time.Duration {
	return min(time.Second<<(min(max(n, 1), 7)-1), time.Minute)
}

// platformOf names the platform of a reply for metrics.
func (g *Gateway) platformOf(in *running, rep *chatopsv1.Event) string {
	if in != nil {
		return in.in.String()
	}
	return rep.GetPlatform()
}

// inputFor returns the running input of platform, or nil.
func (g *Gateway) inputFor(platform string) *running {
	for _, r := range g.inputs {
		if r.in.String() == platform {
			return r
		}
	}
	return nil
}

// deadlineMargin is how long after the router's deadline the gateway still
// waits for its reply (the reply's trip, a NATS reconnect).
const deadlineMargin = 10 * time.Second

// progress takes a router's progress note: the message is being worked on,
// and the note may say by when the router will answer; a note with text is
// posted.
func (g *Gateway) progress(token string, rep *chatopsv1.Event) {
	g.mu.Lock()
	p := g.pending[token]
	if p != nil {
		p.working = true
		if ms, err := strconv.ParseInt(rep.GetMeta()[deadlineKey], 10, 64); err == nil {
			wait := time.Until(time.UnixMilli(ms)) + deadlineMargin
			if time.Since(p.sent)+wait > g.cfg.ReplyTimeout {
				p.timer.Reset(wait)
			}
		}
	}
	g.mu.Unlock()
	if p == nil || len(rep.GetData()) == 0 {
		return
	}
	g.metrics.replies.WithLabelValues(p.r.in.String(), "progress").Inc()
	g.deliver(p.r, rep, false)
}

// deadlineKey is the meta key of a progress note carrying the router's
// deadline for the message, in Unix milliseconds (router.DeadlineKey).
const deadlineKey = "botmesh.deadline"

// answer replies to ev from the gateway itself, with an error, and counts
// the message as answered.
func (g *Gateway) answer(r *running, ev *chatopsv1.Event, text string) {
	g.deliver(r, g.notice(ev, chatopsv1.EventType_EVENT_TYPE_ERROR, text), true)
}

// notice is a reply to ev from the gateway itself.
func (g *Gateway) notice(ev *chatopsv1.Event, typ chatopsv1.EventType, text string) *chatopsv1.Event {
	return &chatopsv1.Event{
		Id:        nuid.Next(),
		Type:      typ,
		From:      &chatopsv1.Peer{Id: "botmesh", Name: "botmesh", Bot: true},
		To:        ev.GetTo(),
		Data:      []byte(text),
		Meta:      ev.GetMeta(),
		Platform:  ev.GetPlatform(),
		Gateway:   g.cfg.Instance,
		Thread:    ev.GetThread(),
		Time:      timestamppb.Now(),
		InReplyTo: ev.GetId(),
	}
}

// deliver queues a reply for the input's sender, which posts replies one at
// a time, in order, off the NATS delivery goroutine. A final reply ends the
// message's wait once it is posted.
func (g *Gateway) deliver(r *running, ev *chatopsv1.Event, final bool) {
	select {
	case r.out <- delivery{ev: ev, final: final}:
	case <-r.closed:
		g.log.Warn("reply after the input stopped; dropped", "event", ev.GetInReplyTo())
	}
}

// send posts the replies queued for r until the gateway stops.
func (g *Gateway) send(r *running) {
	for {
		select {
		case d := <-r.out:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := r.in.Send(ctx, d.ev)
			notPosted := d.post != nil && errors.Is(err, adapter.ErrNotPosted)
			switch {
			case notPosted:
				g.log.Warn("not posted yet; offered again later", "input", r.in.String(), "subject", d.token, "err", err)
			case err != nil:
				g.log.Error("posting reply failed", "input", r.in.String(), "event", d.ev.GetInReplyTo(), "err", err)
			}
			cancel()
			if d.post != nil {
				g.mu.Lock()
				if g.posting[d.token] == d.post {
					delete(g.posting, d.token)
				}
				if notPosted {
					// Its next delivery posts it.
					g.answered.forget(d.token)
				}
				g.mu.Unlock()
				d.post.err = err
				close(d.post.done)
			}
			if d.final {
				r.wg.Done()
			}
		case <-r.closed:
			return
		}
	}
}
