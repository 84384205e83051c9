// Package durable holds the JetStream side of botmesh's durable delivery:
// the stream that keeps inbound chat messages until a router has answered
// them, shared by gateways (which publish into it) and routers (which
// consume it through one durable consumer).
//
// Core NATS delivers a message to a router at most once: a router killed
// while it holds messages loses them. With the stream, a message stays until
// a router acknowledges it after publishing the reply; if that router dies,
// the message goes to another one after the ack wait. Gateways give each
// message the platform's event id as its JetStream message id, so a
// platform's redelivery within the duplicate window is stored once.
package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Delivery modes, as the --delivery flag takes them.
const (
	// JetStream: at least once into the stream, answered once (default).
	JetStream = "jetstream"
	// Core: core NATS, at most once, lowest latency.
	Core = "core"
)

// ValidDelivery reports whether mode is a delivery mode.
func ValidDelivery(mode string) error {
	if mode == JetStream || mode == Core {
		return nil
	}
	return fmt.Errorf("delivery %q is not one of %s, %s", mode, JetStream, Core)
}

// Names of the stream and of the routers' shared consumer.
const (
	Stream   = "BOTMESH_IN"
	Consumer = "routers"
)

// StreamConfig tunes the inbound stream.
type StreamConfig struct {
	// Replicas is the number of copies in a NATS cluster (1 on one server).
	Replicas int
	// DuplicateWindow is how long message ids are remembered to drop
	// redeliveries; gateways rely on it with JetStream delivery (Slack
	// retries an event for up to 5 minutes). At most MaxAge.
	DuplicateWindow time.Duration
	// MaxAge drops messages no router took for this long: a chat command
	// run an hour late would surprise its author more than help.
	MaxAge time.Duration
}

// DefaultStreamConfig returns the defaults.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{Replicas: 1, DuplicateWindow: 10 * time.Minute, MaxAge: 10 * time.Minute}
}

// ErrNoJetStream means the NATS server does not have JetStream enabled.
var ErrNoJetStream = errors.New("JetStream is not enabled on the NATS server: start nats-server with -js (and a store dir), or use --delivery core")

// EnsureStream creates the inbound stream, or updates it to cfg.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	d := DefaultStreamConfig()
	if cfg.Replicas <= 0 {
		cfg.Replicas = d.Replicas
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = d.DuplicateWindow
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = d.MaxAge
	}
	return EnsureStreamConfig(ctx, js, jetstream.StreamConfig{
		Name:        Stream,
		Description: "botmesh inbound chat messages, kept until a router answers them",
		Subjects:    []string{chatopsv1.SubjectInAll},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		MaxAge:      cfg.MaxAge,
		Discard:     jetstream.DiscardOld,
		// A copy of each message for stream processors (events.go): kept
		// by the events stream, which routers make when the first
		// processor asks for its consumer; until then (and in a mesh
		// without processors) the copies go nowhere.
		RePublish: eventsRePublish(),
	})
}

// RouterService is the name under which every router answers the NATS
// service API ($SRV.PING.botmesh-router): a gateway that gets no answer
// knows that no router runs, and tells users their commands are queued.
const RouterService = "botmesh-router"

// RoutersAlive reports whether some router answers a ping on nc within
// wait. An error other than "no responders" (a timeout, a NATS failure)
// counts as alive: it says nothing certain.
func RoutersAlive(nc *nats.Conn, wait time.Duration) bool {
	_, err := nc.Request("$SRV.PING."+RouterService, nil, wait)
	return !errors.Is(err, nats.ErrNoResponders)
}

// ReplyStreamPrefix starts the names of the reply streams. Each platform's
// final replies are kept in a stream of their own, BOTMESH_OUT_<platform>
// (subjects bot.v1.out.<platform>.*.*), so that a reply is not lost when a
// NATS node, the connection of the gateway that waits for it, or that
// gateway itself fails (the gateway, or a sibling of the same platform,
// reads it from the stream), and so that a router handed a message again
// can see that it was answered already. One stream per platform lets NATS
// permissions give a gateway its own platform's replies and no other's.
const ReplyStreamPrefix = "BOTMESH_OUT_"

// OldReplyStream is the one reply stream of earlier botmesh versions, for
// every platform. Its subjects overlap the per-platform streams', so
// routers remove it (its replies are at most an hour old, and only for
// messages answered before the upgrade).
const OldReplyStream = "BOTMESH_OUT"

// ReplyStream returns the name of the stream that keeps platform's replies.
func ReplyStream(platform string) string { return ReplyStreamPrefix + platform }

// ReplyPlatforms are the platforms whose reply streams routers create when
// they start; a router creates another platform's the first time it
// answers one of its messages.
var ReplyPlatforms = []string{"web", "slack", "xmpp", "irc", "shell", "cli"}

// ReplyMaxAge is how long a reply stream keeps a reply: longer than a
// message may wait in the inbound stream plus the longest command.
const ReplyMaxAge = time.Hour

// EnsureReplyStream creates platform's reply stream, or updates it, with
// replicas copies.
func EnsureReplyStream(ctx context.Context, js jetstream.JetStream, platform string, replicas int) (jetstream.Stream, error) {
	name := ReplyStream(platform)
	return EnsureStreamConfig(ctx, js, jetstream.StreamConfig{
		Name:        name,
		Description: "botmesh final replies to " + platform + " messages, kept so that none is lost on the way to a gateway",
		// Replies, and what is posted unasked (outbound.go).
		Subjects:    []string{chatopsv1.SubjectOutPrefix + platform + ".*.*", outboundFilter(platform, "")},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Duplicates:  2 * time.Minute,
		MaxAge:      ReplyMaxAge,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
		// One reply per subject: a router handed a message again finds
		// the reply by its subject.
		MaxMsgsPerSubject: 1,
	})
}

// RemoveOldReplyStream deletes the reply stream of earlier versions, if
// there is one; it reports whether it did.
func RemoveOldReplyStream(ctx context.Context, js jetstream.JetStream) (bool, error) {
	err := js.DeleteStream(ctx, OldReplyStream)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("durable: remove the old stream %s: %w", OldReplyStream, err)
	}
}

// Answered reports whether a reply stream holds a final reply on subject
// (a message's reply_to), or the outbound message that answers it (a
// scheduled command's). An error means it could not tell.
func Answered(ctx context.Context, js jetstream.JetStream, subject string) (bool, error) {
	s, err := js.Stream(ctx, ReplyStream(chatopsv1.ReplyPlatform(subject)))
	if err != nil {
		return false, err
	}
	for _, subj := range []string{subject, OutboundSubject(subject)} {
		_, err = s.GetLastMsgForSubject(ctx, subj)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, jetstream.ErrMsgNotFound):
		default:
			return false, err
		}
	}
	return false, nil
}

// ReplyHeader returns NATS headers for the final reply on subject: its
// message id is the subject, so a reply published twice is kept once.
func ReplyHeader(subject string) nats.Header {
	return nats.Header{jetstream.MsgIDHeader: []string{subject}}
}

// MsgID is the JetStream message id of an event: the platform and the
// event's own id, so the stream drops a platform's redelivery.
func MsgID(platform, eventID string) string { return platform + ":" + eventID }

// Header returns NATS headers carrying the message id.
func Header(platform, eventID string) nats.Header {
	return nats.Header{jetstream.MsgIDHeader: []string{MsgID(platform, eventID)}}
}
