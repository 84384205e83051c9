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
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// DedupWindow is how long an event id is remembered: an event whose id
	// was taken within the window (a platform's redelivery) is dropped.
	// Replicas share the memory through JetStream when the NATS server has
	// it. Negative turns de-duplication off. With JetStream delivery the
	// stream does it instead, for its duplicate window (10 min).
	DedupWindow time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ReplyTimeout:    40 * time.Second,
		MaxMessageBytes: 64 << 10,
		ShutdownGrace:   10 * time.Second,
		DedupWindow:     10 * time.Minute,
		Delivery:        durable.JetStream,
	}
}

// RegisterFlags adds the gateway's flags to fs, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Instance, "instance", c.Instance, "unique name of this gateway process (default: host name and a random suffix)")
	fs.DurationVar(&c.ReplyTimeout, "reply_timeout", c.ReplyTimeout, "how long to wait for a reply before telling the user none came (keep above the router's --timeout)")
	fs.IntVar(&c.MaxMessageBytes, "max_message_bytes", c.MaxMessageBytes, "longest message passed on to the mesh, in bytes")
	fs.DurationVar(&c.ShutdownGrace, "shutdown_grace", c.ShutdownGrace, "on SIGTERM, how long to wait for replies to messages already sent")
	fs.StringVar(&c.Delivery, "delivery", c.Delivery, "how messages reach the routers: jetstream (durable) or core (at most once); must match the routers'")
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
	seq     atomic.Uint64
	mu      sync.Mutex
	pending map[string]*pending // by reply token
	// answered holds the tokens whose final reply was posted, and by whom,
	// so that a second reply to one message (a router redelivery) is
	// dropped while a late reply after a timeout notice is still posted.
	answered *recent
}

// running is one input and its connection.
type running struct {
	in     adapter.Input
	conn   adapter.Conn
	out    chan delivery  // replies to post, in order
	wg     sync.WaitGroup // messages awaiting their final reply
	closed chan struct{}  // closed when the input's sender stops
}

// delivery is a reply to post; final ones end a message's wait.
type delivery struct {
	ev    *chatopsv1.Event
	final bool
}

type pending struct {
	sent  time.Time
	ev    *chatopsv1.Event
	r     *running
	timer *time.Timer
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
	g := &Gateway{metrics: newMetrics(), cfg: cfg, nc: nc, log: log.With("component", "gateway", "instance", cfg.Instance), pending: map[string]*pending{}, answered: newRecent(cfg.ReplyTimeout + 10*time.Minute)}
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

// Instance returns the gateway's instance name.
func (g *Gateway) Instance() string { return g.cfg.Instance }

// Run starts the inputs and relays messages until ctx is done or every
// input has ended (the shell at end of input); in both cases it waits for
// the replies to messages already sent (at most the reply timeout, or the
// shutdown grace after ctx ends) before it returns.
func (g *Gateway) Run(ctx context.Context) error {
	sub, err := g.nc.Subscribe(chatopsv1.SubjectOut(g.cfg.Instance), g.onReply)
	if err != nil {
		return fmt.Errorf("gateway: subscribe to replies: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, 256<<20); err != nil {
		return fmt.Errorf("gateway: pending limits: %w", err)
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
	errc := make(chan error, len(g.inputs))
	var wg sync.WaitGroup
	fail := func(r *running, what string, err error) error {
		cancel()
		for _, o := range g.inputs {
			_ = o.in.Stop(context.WithoutCancel(ctx))
			if o == r {
				break
			}
		}
		wg.Wait()
		return fmt.Errorf("gateway: %s %s: %w", what, r.in, err)
	}
	for _, r := range g.inputs {
		if err := r.in.Start(runCtx); err != nil {
			return fail(r, "start", err)
		}
		conn, err := r.in.Stream(runCtx)
		if err != nil {
			return fail(r, "stream", err)
		}
		r.conn = conn
		go g.send(r)
		wg.Go(func() { errc <- g.relay(runCtx, r) })
		g.log.Info("input started", "input", r.in.String())
	}

	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	var errs []error
	select {
	case <-allDone:
	case <-ctx.Done():
		g.log.Info("gateway stopping", "grace", g.cfg.ShutdownGrace)
		stopCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ShutdownGrace)
		for _, r := range g.inputs {
			if err := r.in.Stop(stopCtx); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", r.in, err))
			}
		}
		cancel()
		select {
		case <-allDone:
		case <-stopCtx.Done():
			errs = append(errs, errors.New("gateway: inputs did not stop within the grace"))
		}
		stop()
	}
	close(errc)
	for err := range errc {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range g.inputs {
		close(r.closed)
		if r.conn != nil {
			_ = r.conn.Close()
		}
	}
	return errors.Join(errs...)
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
	for {
		ev, err := r.conn.Recv(ctx)
		if err != nil {
			close(checked)
			stages.Wait()
			wait := g.cfg.ReplyTimeout + time.Second
			if ctx.Err() != nil {
				wait = g.cfg.ShutdownGrace
			}
			g.waitReplies(r, wait)
			switch {
			case errors.Is(err, io.EOF):
				g.log.Info("input ended", "input", r.in.String())
				return nil
			case ctx.Err() != nil, errors.Is(err, adapter.ErrClosed):
				return nil
			default:
				return fmt.Errorf("gateway: %s: %w", r.in, err)
			}
		}
		// The message awaits its final reply from now on (a duplicate is
		// let go when the check says so).
		r.wg.Add(1)
		c := checking{ev: ev}
		if g.dedup != nil && ev.GetId() != "" {
			c.dup = g.dedup.check(ctx, r.in.String()+"\x00"+ev.GetId())
		}
		checked <- c
	}
}

// publishChecked publishes the checked messages that are not duplicates,
// in order.
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
			g.unreachable(r, s.ev, s.token, streamError(err))
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
	token := strconv.FormatUint(g.seq.Add(1), 36)
	ev.ReplyTo = chatopsv1.ReplySubject(g.cfg.Instance, token)
	data, err := proto.Marshal(ev)
	if err != nil {
		g.answer(r, ev, "message could not be encoded: "+err.Error())
		return s, false
	}
	p := &pending{ev: ev, r: r, sent: time.Now()}
	g.mu.Lock()
	g.pending[token] = p
	p.timer = time.AfterFunc(g.cfg.ReplyTimeout, func() { g.timeout(token) })
	g.mu.Unlock()
	ack, err := g.toRouters(ev, data)
	if err != nil {
		g.unreachable(r, ev, token, err)
		return s, false
	}
	g.metrics.messages.WithLabelValues(r.in.String()).Inc()
	g.log.Debug("message published", "input", r.in.String(), "event", ev.Id, "token", token)
	return sending{ev: ev, token: token, ack: ack}, true
}

// unreachable answers a message that could not be handed to the routers,
// unless it was answered meanwhile.
func (g *Gateway) unreachable(r *running, ev *chatopsv1.Event, token string, err error) {
	g.metrics.refused.WithLabelValues(r.in.String(), "unreachable").Inc()
	if p := g.take(token); p != nil {
		g.answer(r, ev, err.Error())
	}
}

// toRouters hands an encoded message to the routers. With core delivery the
// NATS reply subject is set too, so that NATS answers "no responders" at
// once when no router runs; with JetStream the message is published to the
// stream, which acknowledges it (and drops a redelivery by its id) through
// the returned future.
func (g *Gateway) toRouters(ev *chatopsv1.Event, data []byte) (jetstream.PubAckFuture, error) {
	subject := chatopsv1.SubjectIn(ev.Platform)
	if g.js == nil {
		if err := g.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: ev.ReplyTo, Data: data}); err != nil {
			return nil, fmt.Errorf("could not reach the mesh: %w", err)
		}
		return nil, nil
	}
	ack, err := g.js.PublishMsgAsync(&nats.Msg{Subject: subject, Header: durable.Header(ev.Platform, ev.Id), Data: data},
		jetstream.WithStallWait(ackTimeout), jetstream.WithRetryWait(publishRetryWait), jetstream.WithRetryAttempts(publishRetries))
	if err != nil {
		return nil, streamError(err)
	}
	return ack, nil
}

// ackTimeout bounds the wait for the stream's acknowledgement of a message
// (of each attempt).
const ackTimeout = 5 * time.Second

// A publish that NATS answers with "no responders" is tried again, every
// publishRetryWait, publishRetries times: on a NATS cluster, the stream has
// no leader for a few seconds after its leader's node dies (nats-server
// waits 4 to 9 s before an election), and its messages must wait rather
// than be refused. The stream drops a repeated message by its id. Only when
// no stream answers for that long is the user told.
const (
	publishRetryWait = 500 * time.Millisecond
	publishRetries   = 24
)

// streamError words a failed publish to the stream for the user.
func streamError(err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return errors.New("no router has set up the message stream: is a router running (with --delivery jetstream)?")
	}
	return fmt.Errorf("could not reach the mesh: %w", err)
}

// take removes and returns the pending message of token, or nil if it was
// answered already.
func (g *Gateway) take(token string) *pending {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pending[token]
	if p != nil {
		delete(g.pending, token)
		p.timer.Stop()
	}
	return p
}

func (g *Gateway) timeout(token string) {
	if p := g.take(token); p != nil {
		g.answered.put(token, answeredByTimeout)
		g.log.Warn("no reply in time", "event", p.ev.Id, "timeout", g.cfg.ReplyTimeout)
		g.metrics.replies.WithLabelValues(p.r.in.String(), "timeout").Inc()
		g.answer(p.r, p.ev, fmt.Sprintf("no reply within %s: the mesh may be overloaded or no router is running", g.cfg.ReplyTimeout))
	}
}

// onReply takes a reply from NATS.
func (g *Gateway) onReply(msg *nats.Msg) {
	token := msg.Subject[strings.LastIndexByte(msg.Subject, '.')+1:]
	if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
		// NATS answers "no responders" when nothing subscribes to the
		// inbound subject: no router is running.
		if p := g.take(token); p != nil {
			g.metrics.replies.WithLabelValues(p.r.in.String(), "no_router").Inc()
			g.answer(p.r, p.ev, "no router is running: nothing answers on "+chatopsv1.SubjectIn(p.ev.Platform))
		}
		return
	}
	rep := &chatopsv1.Event{}
	if err := proto.Unmarshal(msg.Data, rep); err != nil {
		g.log.Warn("dropping malformed reply", "subject", msg.Subject, "bytes", len(msg.Data), "err", err)
		return
	}
	if rep.GetType() == chatopsv1.EventType_EVENT_TYPE_PROGRESS {
		g.mu.Lock()
		p := g.pending[token]
		g.mu.Unlock()
		if p != nil {
			g.metrics.replies.WithLabelValues(p.r.in.String(), "progress").Inc()
			g.deliver(p.r, rep, false)
		}
		return
	}
	p := g.take(token)
	if p == nil {
		if by, ok := g.answered.get(token); !ok || by == answeredByRouter {
			// A second reply to one message: a router took it again
			// after another answered it. The user has the answer.
			g.log.Info("duplicate reply dropped", "event", rep.GetInReplyTo(), "subject", msg.Subject)
			g.metrics.replies.WithLabelValues(rep.GetPlatform(), "dropped_duplicate").Inc()
			return
		}
		// Late, after the timeout notice: post it once, since the user
		// may still want it.
		g.answered.put(token, answeredByRouter)
		g.log.Info("late reply", "event", rep.GetInReplyTo(), "subject", msg.Subject)
		for _, r := range g.inputs {
			if r.in.String() == rep.GetPlatform() {
				g.metrics.replies.WithLabelValues(r.in.String(), "late").Inc()
				g.deliverLate(r, rep)
			}
		}
		return
	}
	g.answered.put(token, answeredByRouter)
	kind := "reply"
	if rep.GetType() == chatopsv1.EventType_EVENT_TYPE_ERROR {
		kind = "error"
	}
	g.metrics.replies.WithLabelValues(p.r.in.String(), kind).Inc()
	g.observeReply(p.r, p)
	g.deliver(p.r, rep, true)
}

// answer replies to ev from the gateway itself, with an error, and counts
// the message as answered.
func (g *Gateway) answer(r *running, ev *chatopsv1.Event, text string) {
	g.deliver(r, &chatopsv1.Event{
		Id:        nuid.Next(),
		Type:      chatopsv1.EventType_EVENT_TYPE_ERROR,
		From:      &chatopsv1.Peer{Id: "botmesh", Name: "botmesh", Bot: true},
		To:        ev.GetTo(),
		Data:      []byte(text),
		Meta:      ev.GetMeta(),
		Platform:  ev.GetPlatform(),
		Gateway:   g.cfg.Instance,
		Thread:    ev.GetThread(),
		Time:      timestamppb.Now(),
		InReplyTo: ev.GetId(),
	}, true)
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

func (g *Gateway) deliverLate(r *running, ev *chatopsv1.Event) {
	select {
	case r.out <- delivery{ev: ev}:
	case <-r.closed:
	default:
		g.log.Warn("late reply dropped: queue full", "event", ev.GetInReplyTo())
	}
}

// send posts the replies queued for r until the gateway stops.
func (g *Gateway) send(r *running) {
	for {
		select {
		case d := <-r.out:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := r.conn.Send(ctx, d.ev); err != nil {
				g.log.Error("posting reply failed", "input", r.in.String(), "event", d.ev.GetInReplyTo(), "err", err)
			}
			cancel()
			if d.final {
				r.wg.Done()
			}
		case <-r.closed:
			return
		}
	}
}
