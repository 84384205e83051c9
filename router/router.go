// Package router is the botmesh router: it takes chat events from NATS,
// matches each against the built-in commands and then the command services
// found in the go-micro registry, runs the command and publishes the reply
// to the gateway that owns the conversation. Any number of routers share the
// work (one NATS queue group); each message is handled in its own goroutine,
// with a deadline, so a slow command never holds up another.
package router

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/router/builtin"
	"github.com/botmesh/botmesh/router/directory"
	"github.com/botmesh/botmesh/router/inbound"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/router/ratelimit"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/memory"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/parse"
	"github.com/botmesh/botmesh/sdk/workpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	natsmicro "github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"go-micro.dev/v4/client"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config tunes a router. Zero fields take the defaults of DefaultConfig,
// except RateLimits, HelpAll and SchedulePlatforms, whose zero values mean
// no limits, a help filtered by the policy and schedules on every platform.
type Config struct {
	// Timeout bounds one command, from receipt to reply. A command service
	// that does not answer in time gets the user a timeout message.
	Timeout time.Duration
	// CommandTimeouts overrides Timeout for some commands, by pattern
	// ("query": 2m).
	CommandTimeouts Timeouts
	// MaxInFlight bounds the messages handled at once; more wait in NATS.
	MaxInFlight int
	// MaxMessageBytes is the longest message text accepted.
	MaxMessageBytes int
	// MaxReplyBytes is the longest reply text; a longer result is cut, with
	// a note saying how much. It is also kept under the NATS payload limit.
	MaxReplyBytes int
	// ShutdownGrace is how long Run waits, after its context ends, for the
	// messages in flight to be answered.
	ShutdownGrace time.Duration
	// ResyncInterval is how often the command services are checked against
	// the registry (a service killed without deregistering leaves help at
	// the next check).
	ResyncInterval time.Duration
	// Delivery is how messages arrive: "jetstream" (a durable stream; a
	// message a router took but did not answer goes to another router) or
	// "core" (core NATS: lowest latency, at most once).
	Delivery string
	// JetStream tunes the durable consumer (Delivery "jetstream").
	JetStream inbound.JetStreamConfig
	// ProgressAfter is when a user whose command has not answered yet gets
	// a "working on it" note (0: never).
	ProgressAfter time.Duration
	// Policy decides who may run what (nil: policy.Default()).
	Policy *policy.Policy
	// ConfirmWindow is how long a command that needs confirmation waits
	// for its author's "yes".
	ConfirmWindow time.Duration
	// DialogWindow is how long a command service's question waits for
	// its user's answer (dialog.go).
	DialogWindow time.Duration
	// RateLimits bound how fast one user, or one conversation, may run
	// commands (per router replica).
	RateLimits ratelimit.Config
	// HelpAll makes help list every command, not only those the asking
	// user may run.
	HelpAll bool
	// AuditMaxAge is how long the audit stream keeps records.
	AuditMaxAge time.Duration
	// SchedulesPerUser bounds the schedules (in, at, every, cron) one
	// user may have at once.
	SchedulesPerUser int
	// SchedulePlatforms are the platforms, comma-separated, whose users
	// may set schedules ("": every platform). A scheduled result takes the
	// outbound path (sdk/durable/outbound.go): any gateway of a Slack, XMPP
	// or IRC conversation posts it; a web or shell gateway posts it to its
	// own sessions. botctl (cli) exits after each answer: a result would
	// wait for nobody.
	SchedulePlatforms string
	// WatchHealthEvery is how often the health of a service watched with
	// "watch SERVICE health" is checked (by one router at a time; at
	// least 1s).
	WatchHealthEvery time.Duration
	// TellPlatforms are the platforms, comma-separated, that tell may
	// post to (elsewhere.go): those whose conversations any gateway of
	// the platform can post to, through the outbound path. "": slack,
	// xmpp, irc.
	TellPlatforms string
	// MailDomains are the domains, comma-separated, that mail may go to
	// (a domain and its subdomains; "": any).
	MailDomains string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Timeout:           30 * time.Second,
		MaxInFlight:       1024,
		MaxMessageBytes:   parse.DefaultMaxBytes,
		MaxReplyBytes:     256 << 10,
		ShutdownGrace:     30 * time.Second,
		ResyncInterval:    10 * time.Second,
		Delivery:          durable.JetStream,
		JetStream:         inbound.DefaultJetStreamConfig(),
		ProgressAfter:     5 * time.Second,
		ConfirmWindow:     time.Minute,
		DialogWindow:      5 * time.Minute,
		RateLimits:        ratelimit.Config{UserPerMinute: 30, UserBurst: 10, ChannelPerMinute: 120, ChannelBurst: 30},
		AuditMaxAge:       30 * 24 * time.Hour,
		SchedulesPerUser:  20,
		SchedulePlatforms: "slack,xmpp,irc,web,shell",
		WatchHealthEvery:  10 * time.Second,
		TellPlatforms:     "slack,xmpp,irc",
	}
}

// RegisterFlags adds the router's flags to fs, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "longest time one command may take before the user gets a timeout reply")
	fs.Var(&c.CommandTimeouts, "command_timeouts", "timeouts of particular commands, e.g. 'query=2m,deploy service=10m' (others: --timeout)")
	fs.IntVar(&c.MaxInFlight, "max_inflight", c.MaxInFlight, "messages handled at once; more wait in NATS")
	fs.IntVar(&c.MaxMessageBytes, "max_message_bytes", c.MaxMessageBytes, "longest message accepted, in bytes")
	fs.IntVar(&c.MaxReplyBytes, "max_reply_bytes", c.MaxReplyBytes, "longest reply, in bytes; longer results are cut with a note")
	fs.DurationVar(&c.ShutdownGrace, "shutdown_grace", c.ShutdownGrace, "on SIGTERM, how long to wait for messages in flight")
	fs.DurationVar(&c.ResyncInterval, "resync", c.ResyncInterval, "how often to check the command services against the registry")
	fs.StringVar(&c.Delivery, "delivery", c.Delivery, "how messages arrive: jetstream (durable: none lost if a router dies) or core (at most once, lowest latency)")
	fs.DurationVar(&c.JetStream.AckWait, "ack_wait", c.JetStream.AckWait, "jetstream: how long a message held by a silent router waits before another router takes it")
	fs.IntVar(&c.JetStream.Stream.Replicas, "stream_replicas", c.JetStream.Stream.Replicas, "jetstream: copies of the inbound stream in a NATS cluster")
	fs.DurationVar(&c.ProgressAfter, "progress_after", c.ProgressAfter, "when to tell the user a slow command is still running (0: never)")
	fs.DurationVar(&c.ConfirmWindow, "confirm_window", c.ConfirmWindow, "how long a command that needs confirmation waits for its author's yes")
	fs.DurationVar(&c.DialogWindow, "dialog_window", c.DialogWindow, "how long a command service's question waits for its user's answer")
	fs.Float64Var(&c.RateLimits.UserPerMinute, "rate_user", c.RateLimits.UserPerMinute, "commands a minute one user may run (per router; 0: no limit)")
	fs.IntVar(&c.RateLimits.UserBurst, "rate_user_burst", c.RateLimits.UserBurst, "commands one user may run at once above the rate")
	fs.Float64Var(&c.RateLimits.ChannelPerMinute, "rate_channel", c.RateLimits.ChannelPerMinute, "commands a minute one conversation may run (per router; 0: no limit)")
	fs.IntVar(&c.RateLimits.ChannelBurst, "rate_channel_burst", c.RateLimits.ChannelBurst, "commands one conversation may run at once above the rate")
	fs.BoolVar(&c.HelpAll, "help_all", c.HelpAll, "help lists every command, not only those the user may run")
	fs.DurationVar(&c.AuditMaxAge, "audit_max_age", c.AuditMaxAge, "how long the audit stream keeps records")
	fs.IntVar(&c.SchedulesPerUser, "schedules_per_user", c.SchedulesPerUser, "schedules (in, at, every, cron) one user may have at once")
	fs.DurationVar(&c.WatchHealthEvery, "watch_health_every", c.WatchHealthEvery, "how often the health of a service watched with 'watch SERVICE health' is checked (at least 1s)")
	fs.StringVar(&c.TellPlatforms, "tell_platforms", c.TellPlatforms, "platforms tell may post to, comma-separated; their gateways must read the outbound path and post to any conversation (slack, xmpp, irc do; web and shell sessions live in one process)")
	fs.StringVar(&c.MailDomains, "mail_domains", c.MailDomains, "domains (and their subdomains), comma-separated, that mail may go to (empty: any); a gateway with the mail output (--inputs mail, --smtp_url) sends them")
	fs.StringVar(&c.SchedulePlatforms, "schedule_platforms", c.SchedulePlatforms, "platforms whose users may set schedules, comma-separated (empty: all); their gateways must read the outbound path (slack, xmpp, irc, web, shell do; botctl's cli does not)")
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if c.MaxReplyBytes <= 0 {
		c.MaxReplyBytes = d.MaxReplyBytes
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = d.ShutdownGrace
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = d.ResyncInterval
	}
	if c.Delivery == "" {
		c.Delivery = d.Delivery
	}
	if c.JetStream.AckWait <= 0 {
		c.JetStream.AckWait = d.JetStream.AckWait
	}
	if c.JetStream.MaxAckPending <= 0 {
		c.JetStream.MaxAckPending = d.JetStream.MaxAckPending
	}
	if c.JetStream.MaxDeliver <= 0 {
		c.JetStream.MaxDeliver = d.JetStream.MaxDeliver
	}
	if c.JetStream.Batch <= 0 {
		c.JetStream.Batch = d.JetStream.Batch
	}
	if c.DialogWindow <= 0 {
		c.DialogWindow = d.DialogWindow
	}
	if c.ConfirmWindow <= 0 {
		c.ConfirmWindow = d.ConfirmWindow
	}
	if c.AuditMaxAge <= 0 {
		c.AuditMaxAge = d.AuditMaxAge
	}
	if c.TellPlatforms == "" {
		c.TellPlatforms = d.TellPlatforms
	}
	if c.SchedulesPerUser <= 0 {
		c.SchedulesPerUser = d.SchedulesPerUser
	}
	if c.WatchHealthEvery <= 0 {
		c.WatchHealthEvery = d.WatchHealthEvery
	}
	if c.Policy == nil {
		c.Policy = policy.Default()
	}
	return c
}

// Bot is the identity replies are sent from.
var Bot = &chatopsv1.Peer{Id: "botmesh", Name: "botmesh", Bot: true}

// Router answers chat events. Build it with New and start it with Run.
type Router struct {
	cfg      Config
	m        *mesh.Mesh
	log      *slog.Logger
	dir      *directory.Directory
	cl       client.Client
	src      inbound.Source
	builtins []builtin.Command
	now      func() time.Time

	id      string // this replica, in audit records
	metrics *metrics
	limiter *ratelimit.Limiter
	dlg     atomic.Pointer[dialogBox]
	audit   atomic.Pointer[audit.Recorder]
	js      jetstream.JetStream // with JetStream delivery: the reply streams'
	claims  *durable.Claims     // with JetStream delivery
	// sched is the schedules stream (nil without JetStream), schedJS
	// the JetStream context it was opened with; fired delivers the
	// commands schedules fire. All three are set before Run takes
	// messages.
	sched   jetstream.Stream
	schedJS jetstream.JetStream
	fired   inbound.Source
	// watch is the watch list (watch.go); nil without JetStream. Set
	// before Run takes messages.
	watch *watches
	// outStreams holds the platforms whose reply stream this router made
	// sure of.
	outStreams sync.Map
	// running holds the reply subjects of the durable messages this router
	// runs now.
	running sync.Map
	svcID   string // this router's id in the NATS service API

	silentMu sync.Mutex
	silent   map[string]time.Time // router id → first unanswered ping

	sem      chan struct{}
	workers  *workpool.Pool // closed when Run returns: idle workers exit
	inflight sync.WaitGroup
	ready    chan struct{}
}

func (r *Router) policy() *policy.Policy    { return r.cfg.Policy }
func (r *Router) recorder() *audit.Recorder { return r.audit.Load() }

// Option configures New.
type Option func(*Router)

// WithSource replaces the inbound source (default: a core NATS queue
// subscription to bot.v1.in.>).
func WithSource(s inbound.Source) Option { return func(r *Router) { r.src = s } }

// WithClock sets the clock of the time command and of event times.
func WithClock(now func() time.Time) Option { return func(r *Router) { r.now = now } }

// New builds a router on m. It fails on a configuration that cannot work.
func New(m *mesh.Mesh, cfg Config, opts ...Option) (*Router, error) {
	cfg = cfg.withDefaults()
	if err := durable.ValidDelivery(cfg.Delivery); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if cfg.WatchHealthEvery < time.Second {
		return nil, fmt.Errorf("router: --watch_health_every is %s: it must be at least 1s", cfg.WatchHealthEvery)
	}
	r := &Router{
		cfg:     cfg,
		m:       m,
		log:     m.Logger().With("component", "router"),
		now:     time.Now,
		id:      "router-" + strings.ToLower(nuid.Next()[16:]),
		limiter: ratelimit.New(cfg.RateLimits),
		metrics: newMetrics(),
		sem:     make(chan struct{}, cfg.MaxInFlight),
		workers: workpool.New(workerIdle),
		ready:   make(chan struct{}),
		silent:  map[string]time.Time{},
	}
	r.dlg.Store(&dialogBox{newMemDialogs()})
	rec, _ := audit.New(context.Background(), r.log.With("part", "audit"), nil, audit.StreamConfig{})
	r.audit.Store(rec)
	for _, o := range opts {
		o(r)
	}
	if r.src == nil {
		if cfg.Delivery == durable.Core {
			r.src = inbound.NewCore(m.NATS(), chatopsv1.SubjectInAll)
		} else {
			r.src = inbound.NewJetStream(m.NATS(), cfg.JetStream)
		}
	}
	r.builtins = builtin.Commands(r.now)
	connChanges := make(chan struct{}, 1)
	m.OnConnectionChange(func() {
		select {
		case connChanges <- struct{}{}:
		default: // one is waiting already: the directory looks again anyway
		}
	})
	r.dir = directory.New(m.Registry(), m.Namespace(),
		directory.WithLogger(r.log.With("part", "directory")),
		directory.WithResync(cfg.ResyncInterval),
		directory.WithConnected(m.NATS().IsConnected),
		directory.WithConnectionChanges(connChanges),
		directory.WithCallable(m.CanCall))
	r.cl = m.NewClient(
		client.Selector(r.dir.Selector()),
		client.WrapCall(r.markUnreachable),
		client.Retries(2),
		client.Retry(retryUndelivered),
		client.RequestTimeout(cfg.Timeout),
		connectionTimeout(cfg.Timeout),
	)
	return r, nil
}

// Directory returns the router's view of the command services.
func (r *Router) Directory() *directory.Directory { return r.dir }

// Healthy reports nil once the router takes messages (for /healthz).
func (r *Router) Healthy() error {
	select {
	case <-r.ready:
		return nil
	default:
		return errors.New("starting: looking up the command services and subscribing")
	}
}

// Ready is closed once the router knows the registered command services and
// takes messages.
func (r *Router) Ready() <-chan struct{} { return r.ready }

// Run takes and answers messages until ctx is done, then stops taking new
// ones and waits up to the shutdown grace for those in flight.
func (r *Router) Run(ctx context.Context) error {
	defer r.workers.Close()
	dirCtx, stopDir := context.WithCancel(context.WithoutCancel(ctx))
	dirDone := make(chan error, 1)
	go func() { dirDone <- r.dir.Run(dirCtx, r.help) }()
	defer func() {
		stopDir()
		<-dirDone
	}()
	select {
	case <-r.dir.Ready():
	case <-ctx.Done():
		return nil
	}

	r.useJetStream(ctx)

	// Handlers get their own context: a shutdown lets them finish (within
	// the grace), rather than cancelling commands half-way.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	// Gateways ping routers to tell a user whose command waits for one;
	// routers ping the router that claimed a message.
	if svc, err := natsmicro.AddService(r.m.NATS(), natsmicro.Config{Name: durable.RouterService, Version: "1.0.0", Description: "botmesh router: answers chat commands"}); err != nil {
		r.log.Warn("not announced to gateways: they cannot tell whether a router runs", "err", err)
	} else {
		r.svcID = svc.Info().ID
		defer func() { _ = svc.Stop() }()
		if r.js != nil {
			// Gateways ask for their reply and outbound consumers.
			if err := svc.AddEndpoint("keep-replies", natsmicro.HandlerFunc(r.keepReplies), natsmicro.WithEndpointSubject(durable.KeepSubjectPrefix+"*")); err != nil {
				r.log.Warn("gateways cannot get their reply consumers: a gateway that dies leaves its replies unposted", "err", err)
			}
			// Stream processors (sdk/stream) ask for theirs.
			if err := svc.AddEndpoint("keep-processors", durable.ProcessorEndpoint(r.js, r.cfg.JetStream.Stream.Replicas, r.log.With("part", "processors")), natsmicro.WithEndpointSubject(durable.ProcessorSubjectPrefix+"*")); err != nil {
				r.log.Warn("stream processors cannot get their consumers", "err", err)
			}
		}
	}
	defer r.startWatches(ctx)()
	if err := r.src.Start(ctx, func(m *inbound.Message) { r.receive(work, m, r.process) }); err != nil {
		return err
	}
	if r.sched != nil {
		r.fired = inbound.NewScheduled(r.m.NATS(), r.cfg.JetStream, r.cfg.JetStream.Stream.Replicas)
		if err := r.fired.Start(ctx, func(m *inbound.Message) { r.receive(work, m, r.processFired) }); err != nil {
			r.log.Warn("scheduled commands are not run by this router", "err", err)
			r.fired = nil
		}
	}
	close(r.ready)
	r.log.Info("router ready", "commands", len(r.dir.Commands()), "namespace", r.m.Namespace())
	r.log.Info(r.policy().AdminsLine())
	<-ctx.Done()

	r.log.Info("router stopping", "grace", r.cfg.ShutdownGrace)
	graceCtx, cancelGrace := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ShutdownGrace)
	defer cancelGrace()
	defer func() {
		if err := r.recorder().Flush(graceCtx); err != nil {
			r.log.Warn("audit", "err", err)
		}
	}()
	stopErr := r.src.Stop(graceCtx)
	if r.fired != nil {
		stopErr = errors.Join(stopErr, r.fired.Stop(graceCtx))
	}
	done := make(chan struct{})
	go func() {
		r.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return stopErr
	case <-graceCtx.Done():
		cancelWork()
		<-done
		return errors.Join(stopErr, fmt.Errorf("router: messages still in flight after %s; cancelled", r.cfg.ShutdownGrace))
	}
}

// useJetStream moves dialogs and confirmations to the shared bucket and
// audit records to the audit stream when the NATS server has JetStream;
// without it they stay in this process and the log.
func (r *Router) useJetStream(ctx context.Context) {
	js, err := jetstream.New(r.m.NATS())
	if err != nil {
		r.log.Warn("no JetStream: confirmations stay in this router, audit records in its log", "err", err)
		return
	}
	jctx, cancel := context.WithTimeout(ctx, durable.SetupTimeout)
	defer cancel()
	replicas := r.cfg.JetStream.Stream.Replicas
	if r.cfg.Delivery == durable.JetStream {
		if err := durable.Setup(jctx, func(ctx context.Context) error {
			if removed, err := durable.RemoveOldReplyStream(ctx, js); err != nil {
				return err
			} else if removed {
				r.log.Info("removed the reply stream of an earlier botmesh version; replies are now kept per platform", "stream", durable.OldReplyStream)
			}
			for _, p := range durable.ReplyPlatforms {
				if err := r.ensureOut(ctx, js, p); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			r.log.Warn("replies go on core NATS only: a NATS failure can lose one", "err", err)
		} else {
			r.js = js
		}
		// The events stream is made for the first processor
		// (ProcessorEndpoint); here it only gets the replicas asked for.
		if err := durable.Setup(jctx, func(ctx context.Context) error {
			_, err := durable.UpdateEventsStream(ctx, js, replicas)
			return err
		}); err != nil {
			r.log.Warn("events stream not updated", "stream", durable.EventsStream, "err", err)
		}
		var c *durable.Claims
		if err := durable.Setup(jctx, func(ctx context.Context) (err error) {
			c, err = durable.EnsureClaims(ctx, js, replicas)
			return err
		}); err != nil {
			r.log.Warn("no claims: a message NATS hands out twice may run twice", "err", err)
		} else {
			r.claims = c
		}
	}
	if err := durable.Setup(jctx, func(ctx context.Context) (err error) {
		r.sched, err = durable.EnsureScheduleStream(ctx, js, replicas)
		return err
	}); err != nil {
		r.sched = nil
		r.log.Warn("no schedules: the schedules stream could not be made (nats-server 2.14 or later is needed)", "err", err)
	} else {
		r.schedJS = js
	}
	r.useDialogKV(ctx, jctx, js, replicas)
	if err := durable.Setup(jctx, func(ctx context.Context) error {
		return memory.EnsureBuckets(ctx, js, replicas)
	}); err != nil {
		r.log.Warn("no memory: command services that keep memory (sdk/memory) will say it is not there", "err", err)
	}
	var rec *audit.Recorder
	err = durable.Setup(jctx, func(ctx context.Context) (err error) {
		rec, err = audit.New(ctx, r.log.With("part", "audit"), js, audit.StreamConfig{MaxAge: r.cfg.AuditMaxAge, Replicas: replicas})
		return err
	})
	if err != nil {
		r.log.Warn("audit records go to the log only", "err", err)
	}
	r.audit.Store(rec)
}

// receive hands m to a goroutine of its own, waiting while MaxInFlight
// messages are being handled. The goroutine is an idle worker when there is
// one: a new goroutine's stack grows (and is copied) several times on the
// way through a command, which cost a tenth of the router's CPU when each
// message had a new one.
func (r *Router) receive(ctx context.Context, m *inbound.Message, process func(context.Context, *inbound.Message)) {
	r.sem <- struct{}{}
	r.inflight.Add(1)
	job := func() {
		defer func() {
			<-r.sem
			r.inflight.Done()
		}()
		process(ctx, m)
	}
	r.workers.Go(job)
}

// workerIdle is how long an idle worker waits for a message before it
// exits.
const workerIdle = 10 * time.Second

func (r *Router) process(ctx context.Context, m *inbound.Message) {
	ev := &chatopsv1.Event{}
	if err := proto.Unmarshal(m.Data, ev); err != nil {
		r.log.Warn("dropping malformed event", "subject", m.Subject, "bytes", len(m.Data), "err", err)
		if chatopsv1.ValidReplySubject(m.Reply) {
			r.publish(m.Reply, r.errorReply(&chatopsv1.Event{}, "malformed event: "+err.Error()))
		}
		m.Done(nil) // a malformed event will not get better: never redeliver
		return
	}
	// Trust comes from NATS: the platform is the one of the subject the
	// event was published on (NATS permissions let a gateway publish only
	// on its own), and the reply goes back to that platform's gateways.
	platform := chatopsv1.PlatformOf(m.Subject)
	to := ev.GetReplyTo()
	if !chatopsv1.ValidReplySubject(to) {
		to = m.Reply
	}
	if !chatopsv1.ValidReplySubject(to) {
		r.log.Warn("dropping event with no valid reply subject", "subject", m.Subject, "event", ev.GetId(), "reply_to", ev.GetReplyTo())
		m.Done(nil)
		return
	}
	if platform == "" || ev.GetPlatform() != platform || chatopsv1.ReplyPlatform(to) != platform {
		r.log.Warn("refused: event does not match the subject it came on", "subject", m.Subject, "event", ev.GetId(), "platform", ev.GetPlatform(), "reply_to", to)
		r.refuseForged(ev, m.Subject)
		if chatopsv1.ReplyPlatform(to) == platform && platform != "" {
			r.publish(to, r.errorReply(ev, fmt.Sprintf("refused: this message claims to come from %q but came in on %s", ev.GetPlatform(), m.Subject)))
		}
		m.Done(nil)
		return
	}
	if m.Redelivered {
		if r.answered(ctx, to) {
			// Answered by a router whose acknowledgement was lost (a
			// NATS node that failed meanwhile): running it again would
			// run it twice. The gateway reads the reply from the stream.
			r.log.Info("redelivered message answered already; not run again", "event", ev.GetId(), "subject", m.Subject)
			r.recordAnswered(ctx, ev)
			m.Done(nil)
			return
		}
		r.log.Info("redelivered message", "event", ev.GetId(), "subject", m.Subject)
	}
	r.run(ctx, m, to, ev, func(ctx context.Context) *chatopsv1.Event { return r.Handle(ctx, ev) })
}

// run answers the message m (its event ev, its reply subject to) with
// what handle returns, within the command's deadline: a durable message
// is claimed first, runs once in this router however often NATS hands it
// out, is kept from other routers while it runs, and is acknowledged only
// once its reply is stored.
func (r *Router) run(ctx context.Context, m *inbound.Message, to string, ev *chatopsv1.Event, handle func(context.Context) *chatopsv1.Event) {
	if m.Durable() && r.claims != nil && r.svcID != "" && r.claimed(ctx, m, to, ev) {
		return
	}
	if m.Durable() {
		// A message NATS hands out again while this router still runs
		// it (its keep-alives lost in a NATS failure) waits for that run.
		if _, busy := r.running.LoadOrStore(to, struct{}{}); busy {
			r.log.Info("message handed out again while this router runs it; checking again later", "event", ev.GetId())
			m.Done(inbound.Later{Delay: claimRecheck})
			return
		}
		defer r.running.Delete(to)
	}
	hctx, cancel := context.WithTimeout(ctx, max(r.cfg.Timeout, r.cfg.CommandTimeouts.longest()))
	defer cancel()
	stop := r.whileWorking(hctx, m, to, ev)
	defer stop()
	reply := handle(hctx)
	mark := r.recorder().Mark() // the message's audit record is before it
	final := finalSubject(m, to)
	if m.Durable() && r.js != nil {
		// The acknowledgement waits until the reply is stored: then no
		// NATS failure loses it, and a redelivery finds it. It waits for
		// the audit record too, published before the reply and stored
		// meanwhile, or published again (auditStored).
		err := r.storeReply(ctx, final, reply)
		r.auditStored(ctx, ev, mark)
		m.Done(err)
		return
	}
	err := r.publish(final, reply)
	if m.Durable() {
		r.auditStored(ctx, ev, mark)
	}
	m.Done(err)
}

// auditStored waits until the audit records made before mark
// (audit.Recorder.Mark), the message's among them, are in the audit stream,
// before the message is acknowledged: no acknowledged command lacks its
// record. A router that dies after storing the reply and before this
// leaves the message to a redelivery, which finds the reply and records
// the message again (recordAnswered). It gives up (and says so) after
// storeTimeout; the record is in the log.
func (r *Router) auditStored(ctx context.Context, ev *chatopsv1.Event, mark uint64) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := r.recorder().Stored(sctx, mark); err != nil {
		r.log.Warn("acknowledging a message whose audit record is not confirmed", "event", ev.GetId(), "err", err)
	}
}

// recordAnswered records a message handed out again whose reply is stored
// already, and waits until the record is stored: the router that answered
// it may have died before its own record was (auditStored), so the
// message's record may come twice, never not at all. Its text is not
// recorded again: it may answer a question whose answer is secret, which
// only the first run knew.
func (r *Router) recordAnswered(ctx context.Context, ev *chatopsv1.Event) {
	r.recordAudit(ev, outcome{status: audit.StatusAnswered, text: audit.Redacted}, r.now())
	r.auditStored(ctx, ev, r.recorder().Mark())
}

// refuseForged leaves the audit record of an event whose body disagrees
// with the subject it came on (a gateway, or anyone with its credentials,
// posing as another platform).
func (r *Router) refuseForged(ev *chatopsv1.Event, subject string) {
	r.recordAudit(ev, outcome{status: audit.StatusRejected, err: "forged: platform " + strconv.Quote(ev.GetPlatform()) + " on " + subject}, r.now())
}

// claimTimeout bounds the wait for a claim (through a NATS restart or an
// election); past it the message runs unclaimed.
const claimTimeout = 10 * time.Second

// claimed claims the message for this router before its command runs, and
// reports whether it is handled already: answered before, or being
// answered by another live router (it comes back later, to be
// acknowledged once answered). A message claimed by a router that is gone
// is claimed anew and runs again, as a router's death mid-command always
// made it.
func (r *Router) claimed(ctx context.Context, m *inbound.Message, to string, ev *chatopsv1.Event) bool {
	cctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	owner, err := r.claims.Claim(cctx, to, r.svcID)
	switch {
	case err != nil:
		r.log.Warn("could not claim a message; running it", "event", ev.GetId(), "err", err)
		return false
	case owner == "":
		return false
	}
	if r.answered(ctx, to) {
		r.log.Info("message answered already; not run again", "event", ev.GetId(), "subject", m.Subject)
		r.recordAnswered(ctx, ev)
		m.Done(nil)
		return true
	}
	if owner == r.svcID {
		// This router's own claim: an earlier attempt whose answer NATS
		// lost (the claim was stored), or a delivery this router runs
		// now (process sees that).
		return false
	}
	if r.gone(owner) {
		if ok, err := r.claims.Take(cctx, to, owner, r.svcID); err == nil && ok {
			r.log.Info("the router that took a message is gone; running it", "event", ev.GetId(), "gone", owner)
			return false
		}
	}
	r.log.Info("message handed out again while a router runs it; checking again later", "event", ev.GetId(), "router", owner)
	m.Done(inbound.Later{Delay: claimRecheck})
	return true
}

// A router that does not answer pings for ownerGoneAfter is gone; until
// then (a router reconnecting after a NATS restart does not answer for a
// moment) a message it claimed is checked again every claimRecheck.
const (
	ownerGoneAfter = 8 * time.Second
	claimRecheck   = 4 * time.Second
)

// gone reports whether the router with NATS service id owner has not
// answered pings for ownerGoneAfter.
func (r *Router) gone(owner string) bool {
	alive := durable.RouterAlive(r.m.NATS(), owner, time.Second)
	r.silentMu.Lock()
	defer r.silentMu.Unlock()
	if alive {
		delete(r.silent, owner)
		return false
	}
	since, ok := r.silent[owner]
	if !ok {
		r.silent[owner] = time.Now()
		return false
	}
	return time.Since(since) >= ownerGoneAfter
}

// answered reports whether the reply stream holds the reply to a message
// (its reply subject); when it cannot tell, it says no and the message runs.
func (r *Router) answered(ctx context.Context, to string) bool {
	if r.js == nil {
		return false
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ok, err := durable.Answered(actx, r.js, to)
	if err != nil {
		r.log.Warn("could not check whether a redelivered message was answered; running it", "subject", to, "err", err)
	}
	return ok
}

// keepReplies makes the reply stream consumer a gateway asks for (its
// reply consumer, or an outbound one, durable.KeepHeader): its platform is
// the request's subject's (NATS permissions let a gateway publish only its
// own), its instance the body.
func (r *Router) keepReplies(req natsmicro.Request) {
	platform := strings.TrimPrefix(req.Subject(), durable.KeepSubjectPrefix)
	instance := string(req.Data())
	kind := req.Headers().Get(durable.KeepHeader)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := durable.Setup(ctx, func(ctx context.Context) error {
		if err := r.ensureOut(ctx, r.js, platform); err != nil {
			return err
		}
		return durable.Keep(ctx, r.js, platform, instance, kind)
	})
	if err != nil {
		r.log.Warn("reply consumer for a gateway not made", "platform", platform, "gateway", instance, "kind", kind, "err", err)
		_ = req.Error("500", "reply consumer not made", nil)
		return
	}
	_ = req.Respond(nil)
}

// outKnown reports whether this router made sure of platform's reply
// stream already.
func (r *Router) outKnown(platform string) bool {
	_, ok := r.outStreams.Load(platform)
	return ok
}

// ensureOut makes sure platform's reply stream exists.
func (r *Router) ensureOut(ctx context.Context, js jetstream.JetStream, platform string) error {
	if r.outKnown(platform) {
		return nil
	}
	if _, err := durable.EnsureReplyStream(ctx, js, platform, r.cfg.JetStream.Stream.Replicas); err != nil {
		return err
	}
	r.outStreams.Store(platform, struct{}{})
	return nil
}

// storeTimeout bounds how long a router tries to store a reply in the reply
// stream (through a NATS restart or a leader election).
const storeTimeout = 30 * time.Second

// storeReply publishes a final reply into the reply stream, trying again until
// the stream has it. It returns nil once stored, and also when it could
// not be: the command ran, and handing the message to another router would
// run it again. The reply then goes out once more on core NATS, for a
// gateway that is still listening.
func (r *Router) storeReply(ctx context.Context, to string, reply *chatopsv1.Event) error {
	data, err := proto.Marshal(reply)
	if err != nil {
		r.log.Error("encode reply", "err", err)
		return err
	}
	if err := r.storeData(ctx, to, data); err != nil {
		r.log.Error("reply not stored; sending it on core NATS", "subject", to, "event", reply.GetInReplyTo(), "err", err)
		_ = r.m.NATS().Publish(to, data)
	}
	return nil
}

// storeData publishes data into the reply stream of the platform of to (a
// reply subject, or an outbound one), under the message id to, trying
// again until the stream has it or storeTimeout passes.
func (r *Router) storeData(ctx context.Context, to string, data []byte) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if platform := chatopsv1.ReplyPlatform(strings.TrimSuffix(to, durable.OutboundSuffix)); !r.outKnown(platform) {
		if err := durable.Setup(sctx, func(ctx context.Context) error { return r.ensureOut(ctx, r.js, platform) }); err != nil {
			r.log.Warn("reply stream not set up; storing the reply anyway", "subject", to, "err", err)
		}
	}
	_, err := durable.Publish(sctx, r.js, &nats.Msg{Subject: to, Header: durable.ReplyHeader(to), Data: data})
	return err
}

// DeadlineKey is the meta key of a progress note that carries the time by
// which the router will have answered (Unix milliseconds): the gateway
// waits until then, not its own reply timeout.
const DeadlineKey = "botmesh.deadline"

// deadlineNoteAfter is when the gateway is told a command's deadline, if no
// "working on it" note has told it before: before any gateway's own wait
// (40 s by default) runs out.
const deadlineNoteAfter = 10 * time.Second

// whileWorking keeps a durable message from going to another router while
// this one works on it, tells the user when a command is slow, and tells the
// gateway how long it may take (ctx's deadline). The returned func stops
// all three.
func (r *Router) whileWorking(ctx context.Context, m *inbound.Message, to string, ev *chatopsv1.Event) func() {
	var stops []func()
	if m.Durable() {
		stops = append(stops, every(r.cfg.JetStream.AckWait/3, m.KeepAlive))
	}
	progress := to
	if chatopsv1.ValidReplySubject(ev.GetReplyTo()) {
		progress = chatopsv1.ProgressSubject(to)
	}
	dl, _ := ctx.Deadline()
	note := func(text string) func() {
		return func() {
			p := r.newReply(ev, chatopsv1.EventType_EVENT_TYPE_PROGRESS, text)
			p.Meta = maps.Clone(p.Meta)
			if p.Meta == nil {
				p.Meta = map[string]string{}
			}
			p.Meta[DeadlineKey] = strconv.FormatInt(dl.UnixMilli(), 10)
			_ = r.publish(progress, p)
		}
	}
	after, first := deadlineNoteAfter, note("")
	if r.cfg.ProgressAfter > 0 && r.cfg.ProgressAfter <= deadlineNoteAfter {
		after, first = r.cfg.ProgressAfter, note("working on it…")
	}
	t := time.AfterFunc(after, first)
	stops = append(stops, func() { t.Stop() })
	if r.cfg.ProgressAfter > deadlineNoteAfter {
		t := time.AfterFunc(r.cfg.ProgressAfter, note("working on it…"))
		stops = append(stops, func() { t.Stop() })
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// every calls f every d until the returned func is called; f is not called
// after that returns. d must be positive.
func every(d time.Duration, f func()) func() {
	if d <= 0 {
		panic("router: every with a period of " + d.String())
	}
	var (
		mu      sync.Mutex
		t       *time.Timer
		stopped bool
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(d, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		f()
		t.Reset(d)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

func (r *Router) publish(subject string, reply *chatopsv1.Event) error {
	data, err := proto.Marshal(reply)
	if err != nil {
		r.log.Error("encode reply", "err", err)
		return err
	}
	if err := r.m.NATS().Publish(subject, data); err != nil {
		r.log.Error("publish reply", "subject", subject, "err", err)
		return err
	}
	return nil
}

// help asks a service for its usage; the directory calls it once per new
// service.
func (r *Router) help(ctx context.Context, service string) (*chatopsv1.HelpResponse, error) {
	rsp := &chatopsv1.HelpResponse{}
	var opts []client.CallOption
	if v, ok := directory.HelpVersion(ctx); ok {
		opts = append(opts, client.WithSelectOption(directory.SelectVersion(v)))
	}
	if err := r.cl.Call(ctx, r.cl.NewRequest(service, "Command.Help", &chatopsv1.HelpRequest{}), rsp, opts...); err != nil {
		return nil, err
	}
	return rsp, nil
}

func (r *Router) reply(ev *chatopsv1.Event, text string) *chatopsv1.Event {
	return r.newReply(ev, chatopsv1.EventType_EVENT_TYPE_REPLY, text)
}

func (r *Router) errorReply(ev *chatopsv1.Event, text string) *chatopsv1.Event {
	return r.newReply(ev, chatopsv1.EventType_EVENT_TYPE_ERROR, text)
}

func (r *Router) newReply(ev *chatopsv1.Event, typ chatopsv1.EventType, text string) *chatopsv1.Event {
	return &chatopsv1.Event{
		Id:        nuid.Next(),
		Type:      typ,
		From:      Bot,
		To:        ev.GetTo(),
		Data:      []byte(r.capReply(text)),
		Meta:      ev.GetMeta(),
		Platform:  ev.GetPlatform(),
		Gateway:   ev.GetGateway(),
		Thread:    ev.GetThread(),
		Time:      timestamppb.New(r.now()),
		InReplyTo: ev.GetId(),
	}
}

// capReply cuts text to the reply limit (and what NATS can carry), at a
// character boundary, and says how much was cut.
func (r *Router) capReply(text string) string {
	limit := r.cfg.MaxReplyBytes
	if mp := int(r.m.NATS().MaxPayload()); mp > 0 && limit > mp-16<<10 {
		limit = mp - 16<<10
	}
	if len(text) <= limit {
		return text
	}
	return string(command.Cut([]byte(text), limit))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
