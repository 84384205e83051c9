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
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "botmesh inbound chat messages, kept until a router answers them",
		Subjects:    []string{chatopsv1.SubjectInAll},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		MaxAge:      cfg.MaxAge,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, ErrNoJetStream
		}
		return nil, fmt.Errorf("durable: stream %s: %w", Stream, err)
	}
	return s, nil
}

// MsgID is the JetStream message id of an event: the platform and the
// event's own id, so the stream drops a platform's redelivery.
func MsgID(platform, eventID string) string { return platform + ":" + eventID }

// Header returns NATS headers carrying the message id.
func Header(platform, eventID string) nats.Header {
	return nats.Header{jetstream.MsgIDHeader: []string{MsgID(platform, eventID)}}
}
