package inbound

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStreamConfig tunes the routers' durable consumer.
type JetStreamConfig struct {
	// Stream configures the inbound stream (created if missing).
	Stream durable.StreamConfig
	// AckWait is how long a message may go without a sign of life from
	// the router that took it before it goes to another router. Routers
	// send one every AckWait/3 while they work on a message, so it bounds
	// how late a message held by a killed router is answered, not how long
	// a command may run.
	AckWait time.Duration
	// MaxAckPending bounds the messages all routers hold at once.
	MaxAckPending int
	// MaxDeliver bounds the deliveries of one message: a message that
	// makes every router crash is given up after it.
	MaxDeliver int
	// Batch is how many messages one router asks for at a time.
	Batch int
}

// DefaultJetStreamConfig returns the defaults.
func DefaultJetStreamConfig() JetStreamConfig {
	return JetStreamConfig{
		Stream:        durable.DefaultStreamConfig(),
		AckWait:       10 * time.Second,
		MaxAckPending: 4096,
		MaxDeliver:    10,
		Batch:         256,
	}
}

// pullExpiry and pullHeartbeat shape the router's requests for messages:
// each request lasts pullExpiry, and while it is open the server confirms,
// every pullHeartbeat, that it still has it; two missed heartbeats make the
// router ask again. Under bursts (10,000 messages in the stream at once) the
// consumer was seen, once in a few runs, to believe a request open that the
// server no longer had (nats.go v1.53.1, nats-server v2.15.2): with the
// defaults (30 s expiry, 15 s heartbeat) nothing moved for 30 s. With these
// such a stall lasts about a second. nats.go takes heartbeats of 500 ms to
// 30 s, at most half the expiry. An idle router costs the server two
// heartbeats and half a request a second on this consumer.
//
// The consumer of fired schedules takes no bursts of users' messages, and
// waits longer (a stall there lasts about 5 s): its heartbeats and requests
// woke an idle all-in-one about 12 times a second with the inbound
// consumer's rates, 3 with these.
const (
	pullExpiry    = 2 * time.Second
	pullHeartbeat = 500 * time.Millisecond

	scheduledExpiry    = 10 * time.Second
	scheduledHeartbeat = 2500 * time.Millisecond
)

// JetStream is a Source on the durable consumer shared by all routers.
type JetStream struct {
	nc  *nats.Conn
	cfg JetStreamConfig
	// setup makes sure the stream and the consumer exist.
	setup func(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error)
	name  string // of the consumer, for errors
	// expiry and heartbeat shape its pull requests (pullExpiry).
	expiry, heartbeat time.Duration

	mu sync.Mutex
	cc jetstream.ConsumeContext
}

var _ Source = (*JetStream)(nil)

// NewJetStream returns a Source consuming the inbound stream on nc.
func NewJetStream(nc *nats.Conn, cfg JetStreamConfig) *JetStream {
	d := DefaultJetStreamConfig()
	if cfg.AckWait <= 0 {
		cfg.AckWait = d.AckWait
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = d.MaxAckPending
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = d.MaxDeliver
	}
	if cfg.Batch <= 0 {
		cfg.Batch = d.Batch
	}
	j := &JetStream{nc: nc, cfg: cfg, name: durable.Consumer, expiry: pullExpiry, heartbeat: pullHeartbeat}
	j.setup = func(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
		if err := durable.Setup(ctx, func(ctx context.Context) error {
			_, err := durable.EnsureStream(ctx, js, j.cfg.Stream)
			return err
		}); err != nil {
			return nil, err
		}
		var cons jetstream.Consumer
		err := durable.Setup(ctx, func(ctx context.Context) (err error) {
			cons, err = durable.EnsureConsumer(ctx, js, durable.Stream, jetstream.ConsumerConfig{
				Durable:       durable.Consumer,
				Description:   "botmesh routers",
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       j.cfg.AckWait,
				MaxDeliver:    j.cfg.MaxDeliver,
				MaxAckPending: j.cfg.MaxAckPending,
				DeliverPolicy: jetstream.DeliverAllPolicy,
			})
			return err
		})
		return cons, err
	}
	return j
}

// NewScheduled returns a Source of the commands that schedules fire: the
// routers' shared consumer of the schedules stream (durable.ScheduleStream),
// which replicas copies keep. Its messages carry their headers and stream
// sequence.
func NewScheduled(nc *nats.Conn, cfg JetStreamConfig, replicas int) *JetStream {
	j := NewJetStream(nc, cfg)
	j.name = durable.ScheduleConsumer + " of " + durable.ScheduleStream
	j.expiry, j.heartbeat = scheduledExpiry, scheduledHeartbeat
	j.setup = func(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
		if err := durable.Setup(ctx, func(ctx context.Context) error {
			_, err := durable.EnsureScheduleStream(ctx, js, replicas)
			return err
		}); err != nil {
			return nil, err
		}
		var cons jetstream.Consumer
		err := durable.Setup(ctx, func(ctx context.Context) (err error) {
			cons, err = durable.EnsureScheduleConsumer(ctx, js, j.cfg.AckWait, j.cfg.MaxDeliver)
			return err
		})
		return cons, err
	}
	return j
}

// Start implements Source: it makes sure the stream and the consumer exist
// and starts consuming.
func (j *JetStream) Start(ctx context.Context, h Handler) error {
	js, err := jetstream.New(j.nc)
	if err != nil {
		return fmt.Errorf("inbound: jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, durable.SetupTimeout)
	defer cancel()
	cons, err := j.setup(sctx, js)
	if err != nil {
		return fmt.Errorf("inbound: consumer %s: %w", j.name, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		redelivered := false
		var seq uint64
		if md, err := msg.Metadata(); err == nil {
			redelivered = md.NumDelivered > 1
			seq = md.Sequence.Stream
		}
		m := NewMessage(msg.Data(), msg.Subject(), "", func(err error) {
			var later Later
			switch {
			case err == nil:
				_ = msg.Ack()
			case errors.As(err, &later):
				_ = msg.NakWithDelay(later.Delay)
			default:
				_ = msg.NakWithDelay(time.Second)
			}
		})
		m.Redelivered = redelivered
		m.Header = msg.Headers()
		m.Seq = seq
		m.touch = func() { _ = msg.InProgress() }
		h(m)
	}, jetstream.PullMaxMessages(j.cfg.Batch), jetstream.PullExpiry(j.expiry), jetstream.PullHeartbeat(j.heartbeat))
	if err != nil {
		return fmt.Errorf("inbound: consume: %w", err)
	}
	j.mu.Lock()
	j.cc = cc
	j.mu.Unlock()
	return nil
}

// Stop implements Source: it stops fetching and lets the messages already
// fetched reach the handler. Messages fetched but never acknowledged go to
// another router after the ack wait.
func (j *JetStream) Stop(ctx context.Context) error {
	j.mu.Lock()
	cc := j.cc
	j.cc = nil
	j.mu.Unlock()
	if cc == nil {
		return nil
	}
	cc.Drain()
	select {
	case <-cc.Closed():
		return nil
	case <-ctx.Done():
		cc.Stop()
		return errors.Join(fmt.Errorf("inbound: drain of %s: %w", j.name, ctx.Err()))
	}
}
