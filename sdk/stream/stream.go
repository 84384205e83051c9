// Package stream runs stream processors: services that read the mesh's
// chat messages as they come in (all of them, or those of a platform, a
// conversation or a command) and may post to any conversation. It is the
// Micro Bot's missing "Stream interface": take events from one stream,
// process them, and respond elsewhere.
//
// A processor has a name, and a durable JetStream consumer of that name on
// the events stream (sdk/durable/events.go), made for it by a router: it
// reads every message once, in order, and goes on where it stopped after a
// restart (within durable.EventsMaxAge). Replicas of a processor run under
// one name share the work: each event goes to one of them. Its identity on
// NATS may read only that consumer and post only as itself
// (deploy/nats/permissions.conf). It reads messages as users typed them,
// secret words included (see HelpResponse.secret_args): never log them.
// The demo processor is services/relay.
//
//	p, err := stream.New(nc, "relay")
//	err = p.Run(ctx, stream.Filter{Platform: "slack", Command: "deploy"},
//		func(ctx context.Context, ev *chatopsv1.Event) error {
//			return p.Post(ctx, stream.Message("slack", "C0OPS", "deploy seen: "+string(ev.GetData())))
//		})
package stream

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/parse"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Handler processes one event. It gets the events one at a time, in the
// order the mesh took them. Returning nil acknowledges the event: it is
// not handed out again. An error hands it out again after a delay (doubling
// from half a second), up to durable.ProcessorMaxDeliver times in all;
// then it is dropped, with an error in the log. A handler should finish
// within durable.ProcessorAckWait: an event held longer is handed out
// again.
//
// An event is handed out once unless the processor dies between the
// handler's return and the acknowledgement; a handler whose effect must
// not happen twice can key it on the event's id.
type Handler func(ctx context.Context, ev *chatopsv1.Event) error

// Filter selects the events a processor gets; an empty field selects all.
type Filter struct {
	// Platform is the platform whose messages it reads (slack, xmpp,
	// irc, web, shell, …), selected by NATS.
	Platform string
	// Conversation is the channel, room or direct-message id (the
	// event's To) whose messages it reads.
	Conversation string
	// Command is the words a message starts with, compared without
	// regard to case, as the router reads a message ("deploy", "list
	// services"): white space between words does not matter, and a
	// leading "micro" is dropped.
	Command string
}

// validate says in a sentence what is wrong with f; nil if nothing.
func (f Filter) validate() error {
	if f.Platform != "" && !chatopsv1.ValidToken(f.Platform) {
		return fmt.Errorf("stream: platform %q is not a platform name (one word, no dots or wildcards)", f.Platform)
	}
	if f.Command != "" && len(strings.Fields(f.Command)) == 0 {
		return errors.New("stream: the command to filter on is blank")
	}
	return nil
}

// match reports whether ev passes f's conversation and command (NATS
// selects the platform).
func (f Filter) match(ev *chatopsv1.Event) bool {
	if f.Conversation != "" && ev.GetTo() != f.Conversation {
		return false
	}
	if f.Command == "" {
		return true
	}
	want := strings.Fields(strings.ToLower(f.Command))
	msg, err := parse.Parse(ev.GetData(), 0) // read as the routers read it
	if err != nil {
		return false
	}
	got := msg.Words
	if len(got) < len(want) {
		return false
	}
	for i, w := range want {
		if strings.ToLower(got[i]) != w {
			return false
		}
	}
	return true
}

// Processor is a stream processor of a given name.
type Processor struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	name string
	log  *slog.Logger
}

// Option changes a Processor.
type Option func(*Processor) error

// WithLogger logs to log (by default, nowhere).
func WithLogger(log *slog.Logger) Option {
	return func(p *Processor) error {
		if log == nil {
			return errors.New("stream: nil logger")
		}
		p.log = log
		return nil
	}
}

// New returns the processor name on nc. The name is its consumer's and,
// with NATS permissions, its identity's: 1 to 64 letters, digits, '-' or
// '_'.
func New(nc *nats.Conn, name string, opts ...Option) (*Processor, error) {
	if err := durable.ValidProcessorName(name); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	p := &Processor{nc: nc, js: js, name: name, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, err
		}
	}
	p.log = p.log.With("processor", name)
	return p, nil
}

// Name returns the processor's name.
func (p *Processor) Name() string { return p.name }

// Tuning of Run, measured on loopback: a fetch of up to fetchBatch events
// that waits at most fetchWait keeps a stop within fetchWait, and leaves
// no event on its way to a processor that stopped (a consumer reading in
// the background would: it waits out the ack wait, 30 s, before going to
// the next run).
const (
	fetchBatch = 256
	fetchWait  = time.Second
	// retryFirst is the delay before a failed event is handed out again;
	// it doubles with each failure, up to retryMost.
	retryFirst = 500 * time.Millisecond
	retryMost  = 30 * time.Second
)

// Run hands the events f selects to h, one at a time, until ctx ends
// (then it returns nil, once the event in hand is handled) or the
// routers refuse the processor's consumer. It waits for a router while
// none answers (a router makes the consumer).
func (p *Processor) Run(ctx context.Context, f Filter, h Handler) error {
	if err := f.validate(); err != nil {
		return err
	}
	cons, err := p.consumer(ctx, f.Platform)
	if err != nil || cons == nil {
		return err
	}
	p.log.Info("stream processor reading", "platform", cmp.Or(f.Platform, "*"), "conversation", cmp.Or(f.Conversation, "*"), "command", cmp.Or(f.Command, "*"))
	wait := retryFirst
	for ctx.Err() == nil {
		batch, err := cons.Fetch(fetchBatch, jetstream.FetchMaxWait(fetchWait))
		if err == nil {
			for m := range batch.Messages() {
				p.handle(ctx, m, f, h)
			}
			err = batch.Error()
		}
		switch {
		case err == nil, errors.Is(err, nats.ErrTimeout):
			wait = retryFirst
			continue
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			p.log.Warn("the consumer is gone; asking the routers again", "err", err)
			if cons, err = p.consumer(ctx, f.Platform); err != nil || cons == nil {
				return err
			}
			continue
		}
		p.log.Debug("reading events", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	return nil
}

// consumer asks the routers for the processor's consumer until one makes
// it or ctx ends (nil, nil); a refusal is an error.
func (p *Processor) consumer(ctx context.Context, platform string) (jetstream.Consumer, error) {
	wait := retryFirst
	told := false
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := durable.RequestProcessorConsumer(rctx, p.nc, p.name, platform)
		var cons jetstream.Consumer
		if err == nil {
			cons, err = p.js.Consumer(rctx, durable.EventsStream, p.name)
		}
		cancel()
		switch {
		case err == nil:
			return cons, nil
		case ctx.Err() != nil:
			return nil, nil
		case errors.Is(err, durable.ErrProcessorRefused):
			return nil, fmt.Errorf("stream: %w", err)
		case errors.Is(err, durable.ErrNoRouter) && !told:
			p.log.Info("waiting for a router: routers make the consumers of stream processors")
			told = true
		case !errors.Is(err, durable.ErrNoRouter):
			p.log.Debug("asking for the consumer", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// handle hands m to h if it passes f, and acknowledges it, or has it
// handed out again.
func (p *Processor) handle(ctx context.Context, m jetstream.Msg, f Filter, h Handler) {
	if ctx.Err() != nil {
		// Stopping: to the next run at once, not after the ack wait.
		_ = m.Nak()
		return
	}
	ev := &chatopsv1.Event{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		p.log.Warn("dropping an event that is not one", "subject", m.Subject(), "bytes", len(m.Data()), "err", err)
		_ = m.Term()
		return
	}
	// Only a gateway of a platform may publish its messages (NATS
	// permissions); the router refuses a body that names another, and so
	// does a processor.
	if platform := strings.TrimPrefix(m.Subject(), durable.EventsSubjectPrefix); ev.GetPlatform() != platform {
		p.log.Warn("dropping an event whose platform is not its subject's", "subject", m.Subject(), "platform", ev.GetPlatform(), "event", ev.GetId())
		_ = m.Term()
		return
	}
	if !f.match(ev) {
		_ = m.Ack()
		return
	}
	err := h(ctx, ev)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err == nil {
		if err := m.DoubleAck(actx); err != nil {
			p.log.Warn("event handled; its acknowledgement was not confirmed, so it may come again", "event", ev.GetId(), "err", err)
		}
		return
	}
	n := uint64(1)
	if md, mdErr := m.Metadata(); mdErr == nil {
		n = md.NumDelivered
	}
	if n >= durable.ProcessorMaxDeliver {
		p.log.Error("event dropped: the handler failed on every try", "event", ev.GetId(), "platform", ev.GetPlatform(), "conversation", ev.GetTo(), "tries", n, "err", err)
		_ = m.Term()
		return
	}
	delay := min(retryFirst<<(n-1), retryMost)
	p.log.Warn("the handler failed; the event comes again", "event", ev.GetId(), "try", n, "after", delay, "err", err)
	_ = m.NakWithDelay(delay)
}

// perInstance are the platforms whose conversations live in one gateway
// process (a web chat session, a terminal, botctl): only that gateway
// posts to them, and a processor cannot name it.
var perInstance = []string{"web", "shell", "cli"}

// Message returns an event that posts text to conversation (a channel,
// room or direct-message id, as events' To) of platform.
func Message(platform, conversation, text string) *chatopsv1.Event {
	return &chatopsv1.Event{Platform: platform, To: conversation, Data: []byte(text)}
}

// Post posts ev to the conversation ev.To of ev.Platform (in ev.Thread,
// if set) through the outbound path (sdk/durable/outbound.go): any gateway
// of the platform posts it, once, even if the one that takes it dies. It
// returns once the platform's reply stream stored it (the routers make
// these streams), or with an error when ctx ends first: give ctx a
// deadline. Posting an event with the same id again within two minutes
// stores it once; an event without an id gets one.
//
// Slack, XMPP and IRC conversations (any gateway of the platform can post
// to them) can be posted to; web, shell and cli ones cannot.
func (p *Processor) Post(ctx context.Context, ev *chatopsv1.Event) error {
	platform := ev.GetPlatform()
	switch {
	case !chatopsv1.ValidToken(platform):
		return fmt.Errorf("stream: post: platform %q is not a platform name", platform)
	case ev.GetTo() == "":
		return errors.New("stream: post: no conversation to post to (the event's To is empty)")
	case slices.Contains(perInstance, platform):
		return fmt.Errorf("stream: post: a %s conversation belongs to one gateway process, which a processor cannot reach; post to a slack, xmpp or irc conversation", platform)
	}
	ev = proto.CloneOf(ev)
	if ev.Id == "" {
		ev.Id = nuid.Next()
	}
	if ev.Type == chatopsv1.EventType_EVENT_TYPE_UNSPECIFIED {
		ev.Type = chatopsv1.EventType_EVENT_TYPE_REPLY
	}
	if ev.Time == nil {
		ev.Time = timestamppb.Now()
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return fmt.Errorf("stream: post: %w", err)
	}
	// The subject's token is the id's digest: an id may hold any
	// character, and the same id makes the same subject (one message).
	sum := sha256.Sum256([]byte(ev.Id))
	subject := durable.OutboundSubject(chatopsv1.ReplySubject(platform, p.name, "p"+hex.EncodeToString(sum[:12])))
	if _, err := durable.Publish(ctx, p.js, &nats.Msg{Subject: subject, Header: durable.ReplyHeader(subject), Data: data}); err != nil {
		return fmt.Errorf("stream: post to %s %s: %w", platform, ev.GetTo(), err)
	}
	p.log.Debug("posted", "platform", platform, "conversation", ev.GetTo(), "event", ev.GetId())
	return nil
}
