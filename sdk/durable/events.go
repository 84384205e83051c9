package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	natsmicro "github.com/nats-io/nats.go/micro"
)

// The event stream: what stream processors (sdk/stream) read.
//
// The inbound stream has WorkQueue retention, so it allows one consumer
// per message (the routers'); a processor cannot read it too. Instead the
// inbound stream republishes every message it stores (JetStream's
// RePublish) from bot.v1.in.<platform> to bot.v1.ev.<platform>, where the
// events stream, BOTMESH_EVENTS, keeps it for EventsMaxAge with Limits
// retention: any number of processors read it, each through a durable
// consumer of its own, and none takes a message from the routers or from
// another processor. The republished copy keeps the gateway's headers,
// Nats-Msg-Id among them, so a message is stored once here as it is in
// the inbound stream.
//
// RePublish is a core NATS publish by the server once the inbound stream
// has stored the message. On one server it goes to the events stream in
// the same process; in a cluster it crosses to the events stream's
// leader, and a message republished while that leader is being elected
// is not kept (the routers still get it: the inbound stream is unaffected).
//
// Processors may not create consumers (a NATS user who can create one can
// make it push a stream's messages to any subject, bot.v1.in.* among
// them): a processor asks the routers for its own on
// ProcessorSubject(name), as gateways ask for theirs (keep.go), and NATS
// permissions let a processor's identity ask only for its own name.

// Names and subjects of the events stream.
const (
	EventsStream = "BOTMESH_EVENTS"
	// EventsSubjectPrefix starts the events' subjects: the inbound
	// subject's platform follows.
	EventsSubjectPrefix = "bot.v1.ev."
	// EventsMaxAge is how long the events stream keeps an event: a
	// processor stopped for longer misses what is older.
	EventsMaxAge = time.Hour
	// ProcessorSubjectPrefix starts the subject on which a processor asks
	// the routers for its consumer: bot.v1.processor.<name>, with the
	// platform it reads (empty: every platform) as the body.
	ProcessorSubjectPrefix = "bot.v1.processor."
)

// The consumers of processors: acknowledged by the processor after its
// handler succeeded; a failed event is offered again (with a delay the
// processor picks) at most ProcessorMaxDeliver times.
const (
	ProcessorAckWait    = 30 * time.Second
	ProcessorMaxDeliver = 5
	// ProcessorInactive is how long the consumer of a processor that no
	// longer runs is kept (then NATS removes it): by then the events it
	// would read have left the stream too.
	ProcessorInactive = EventsMaxAge
)

// EventsSubject returns the subject of platform's events ("" or "*": every
// platform's).
func EventsSubject(platform string) string {
	if platform == "" || platform == "*" {
		return EventsSubjectPrefix + ">"
	}
	return EventsSubjectPrefix + platform
}

// ProcessorSubject returns the subject on which processor name asks for
// its consumer.
func ProcessorSubject(name string) string { return ProcessorSubjectPrefix + name }

// eventsRePublish is the rule that copies what the inbound stream stores
// to the events stream's subjects.
func eventsRePublish() *jetstream.RePublish {
	return &jetstream.RePublish{
		Source:      chatopsv1.SubjectInAll,
		Destination: EventsSubjectPrefix + ">",
	}
}

// EnsureEventsStream creates the events stream, or updates it, with
// replicas copies. Routers make it when a processor first asks for its
// consumer (ProcessorEndpoint), not before: a processor reads the events
// from the time its consumer is made, so copies stored before any
// processor asked would be read by none. Until then the inbound stream's
// copies go nowhere, and a mesh without processors stores each message
// once. The inbound stream does not depend on it.
func EnsureEventsStream(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	return EnsureStreamConfig(ctx, js, eventsStreamConfig(replicas))
}

// UpdateEventsStream updates the events stream to replicas copies if it is
// there, and does not make it (EnsureEventsStream does, for the first
// processor). Routers call it at start. It reports whether the stream is
// there.
func UpdateEventsStream(ctx context.Context, js jetstream.JetStream, replicas int) (bool, error) {
	_, err := js.UpdateStream(ctx, eventsStreamConfig(replicas))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return false, nil
	default:
		return false, streamError(EventsStream, err)
	}
}

func eventsStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "botmesh chat messages as the inbound stream stored them, for stream processors (sdk/stream); each reads them through a consumer of its own",
		Subjects:    []string{EventsSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Duplicates:  2 * time.Minute,
		MaxAge:      EventsMaxAge,
		Discard:     jetstream.DiscardOld,
	}
}

// processorName is what a processor's name may be: a consumer name and
// one subject token.
var processorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// ValidProcessorName reports, in a sentence, what is wrong with a
// processor's name; nil if nothing.
func ValidProcessorName(name string) error {
	if !processorName.MatchString(name) {
		return fmt.Errorf("processor name %q: use 1 to 64 letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	return nil
}

// ErrProcessorRefused means the routers refused to make a processor's
// consumer: its name or platform cannot be one. Asking again is no use.
var ErrProcessorRefused = errors.New("the routers refused the processor's consumer")

// ErrBadProcessorRequest means a processor asked for a consumer with a
// name or platform that cannot be one.
var ErrBadProcessorRequest = errors.New("durable: bad processor request")

// checkProcessorRequest says in a sentence what is wrong with a request
// for the consumer of processor name of platform's events; nil if nothing.
func checkProcessorRequest(name, platform string) error {
	if err := ValidProcessorName(name); err != nil {
		return err
	}
	if platform != "" && !chatopsv1.ValidToken(platform) {
		return fmt.Errorf("platform %q is not a platform name (one word, no dots or wildcards)", platform)
	}
	return nil
}

// EnsureProcessorConsumer creates, or updates, the durable consumer of
// processor name on the events stream: the events of platform ("": every
// platform), from the time it is first made.
func EnsureProcessorConsumer(ctx context.Context, js jetstream.JetStream, name, platform string) error {
	if err := checkProcessorRequest(name, platform); err != nil {
		return fmt.Errorf("%w: %w", ErrBadProcessorRequest, err)
	}
	desc := "events of every platform"
	if platform != "" {
		desc = platform + " events"
	}
	_, err := EnsureConsumer(ctx, js, EventsStream, jetstream.ConsumerConfig{
		Durable:     name,
		Description: "stream processor " + name + ": " + desc,
		// From the first start on; a restart goes on where it stopped.
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		FilterSubject:     EventsSubject(platform),
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           ProcessorAckWait,
		MaxDeliver:        ProcessorMaxDeliver,
		MaxAckPending:     1024,
		InactiveThreshold: ProcessorInactive,
	})
	if err != nil {
		return fmt.Errorf("durable: consumer %s of %s: %w", name, EventsStream, err)
	}
	return nil
}

// ProcessorEndpoint returns the handler with which routers make the
// consumer a processor asks for on ProcessorSubjectPrefix+"*": its name
// is the subject's last token (NATS permissions let a processor publish
// only its own), the platform it reads the body. It makes the events
// stream first, if it is not there.
func ProcessorEndpoint(js jetstream.JetStream, replicas int, log *slog.Logger) natsmicro.Handler {
	return natsmicro.HandlerFunc(func(req natsmicro.Request) {
		name := strings.TrimPrefix(req.Subject(), ProcessorSubjectPrefix)
		platform := string(req.Data())
		if err := checkProcessorRequest(name, platform); err != nil {
			log.Warn("refused a processor's consumer", "processor", name, "platform", platform, "err", err)
			_ = req.Error("400", err.Error(), nil)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := Setup(ctx, func(ctx context.Context) error {
			if _, err := EnsureEventsStream(ctx, js, replicas); err != nil {
				return err
			}
			return EnsureProcessorConsumer(ctx, js, name, platform)
		})
		switch {
		case err != nil:
			log.Warn("consumer for a processor not made", "processor", name, "platform", platform, "err", err)
			_ = req.Error("500", "the consumer could not be made; try again", nil)
		default:
			_ = req.Respond(nil)
		}
	})
}

// RequestProcessorConsumer asks the routers for processor name's consumer
// of platform's events ("": every platform's) and returns once one has
// made it: ErrNoRouter if no router answers; a refusal carries the
// router's sentence.
func RequestProcessorConsumer(ctx context.Context, nc *nats.Conn, name, platform string) error {
	if err := ValidProcessorName(name); err != nil {
		return err
	}
	rsp, err := nc.RequestWithContext(ctx, ProcessorSubject(name), []byte(platform))
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return ErrNoRouter
	case err != nil:
		return fmt.Errorf("asking the routers for the consumer of processor %s: %w", name, err)
	}
	e := rsp.Header.Get(natsmicro.ErrorHeader)
	switch {
	case e == "":
		return nil
	case rsp.Header.Get(natsmicro.ErrorCodeHeader) == "400":
		return fmt.Errorf("%w: %s", ErrProcessorRefused, e)
	default:
		return fmt.Errorf("the routers did not make the consumer of processor %s: %s", name, e)
	}
}
