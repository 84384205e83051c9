// Package inbound delivers the encoded chat events that gateways publish to
// the router. A Source hides how they arrive: a JetStream durable consumer
// shared by all routers (at least once: a message a router took but did not
// finish goes to another router), or a core NATS queue subscription (lowest
// latency, at most once).
package inbound

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nats.go"
)

// QueueGroup is the NATS queue group all routers join, so that each event
// goes to one router.
const QueueGroup = "router"

// Message is one inbound event.
type Message struct {
	// Data is the encoded chatops.v1.Event.
	Data []byte
	// Subject is where it was published (bot.v1.in.<platform>).
	Subject string
	// Reply is the NATS reply subject of the delivery, if any. Routers
	// answer on the event's reply_to, and fall back to this.
	Reply string

	// Header holds the message's NATS headers (JetStream sources).
	Header nats.Header
	// Seq is the message's sequence in its stream (JetStream sources).
	Seq uint64

	// Redelivered is true when the message was delivered before (to a
	// router that did not finish it).
	Redelivered bool

	done  func(error)
	touch func()
	once  sync.Once
}

// NewMessage returns a Message; done, if not nil, is called once by Done.
func NewMessage(data []byte, subject, reply string, done func(error)) *Message {
	return &Message{Data: data, Subject: subject, Reply: reply, done: done}
}

// Durable reports whether the message stays in a stream until Done, and so
// needs KeepAlive while it is worked on.
func (m *Message) Durable() bool { return m.touch != nil }

// KeepAlive tells the source the message is still being worked on, so it is
// not handed to another router meanwhile. Sources without redelivery ignore
// it.
func (m *Message) KeepAlive() {
	if m.touch != nil {
		m.touch()
	}
}

// Done reports that the message is handled (err nil: it is answered and must
// not come again) or must be handed to another router (err not nil). Sources
// without redelivery ignore it. Only the first call counts.
func (m *Message) Done(err error) {
	m.once.Do(func() {
		if m.done != nil {
			m.done(err)
		}
	})
}

// Later is the error for Message.Done that hands a message back to come
// again after Delay (another router is answering it).
type Later struct{ Delay time.Duration }

func (l Later) Error() string { return "inbound: later" }

// Handler receives messages. It must not block for long: the router hands
// each message to its own goroutine.
type Handler func(*Message)

// Source delivers inbound messages.
type Source interface {
	// Start begins delivering messages to h and returns once the source is
	// subscribed, so a message published after Start returns reaches h.
	Start(ctx context.Context, h Handler) error
	// Stop stops taking new messages, delivers those already received, and
	// returns. It is safe to call more than once.
	Stop(ctx context.Context) error
}

// Core is a Source on a core NATS queue subscription.
type Core struct {
	nc      *nats.Conn
	subject string
	queue   string

	mu  sync.Mutex
	sub *nats.Subscription
}

var _ Source = (*Core)(nil)

// NewCore returns a Source that queue-subscribes nc to subject (normally
// chatopsv1.SubjectInAll) in the queue group "router".
func NewCore(nc *nats.Conn, subject string) *Core {
	return &Core{nc: nc, subject: subject, queue: QueueGroup}
}

// Start implements Source.
func (c *Core) Start(_ context.Context, h Handler) error {
	sub, err := c.nc.QueueSubscribe(c.subject, c.queue, func(m *nats.Msg) {
		h(NewMessage(m.Data, m.Subject, m.Reply, nil))
	})
	if err != nil {
		return fmt.Errorf("inbound: subscribe %s: %w", c.subject, err)
	}
	// Buffer bursts rather than dropping them as a slow consumer: the
	// handler only starts a goroutine, so the buffer drains fast.
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		return fmt.Errorf("inbound: pending limits: %w", err)
	}
	if err := c.nc.Flush(); err != nil {
		return fmt.Errorf("inbound: flush subscription: %w", err)
	}
	c.mu.Lock()
	c.sub = sub
	c.mu.Unlock()
	return nil
}

// Stop implements Source: it drains the subscription (unsubscribes at the
// server, then delivers what arrived before).
func (c *Core) Stop(ctx context.Context) error {
	c.mu.Lock()
	sub := c.sub
	c.sub = nil
	c.mu.Unlock()
	if sub == nil {
		return nil
	}
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
			return nil
		}
		return fmt.Errorf("inbound: drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("inbound: drain of %s: %w", c.subject, ctx.Err())
	}
}

// SubjectFor returns the inbound subject for a platform.
func SubjectFor(platform string) string { return chatopsv1.SubjectIn(platform) }
