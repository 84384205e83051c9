package durable

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Scheduled commands ("in 10m health greeter", "every 1h …") are JetStream
// message schedules (nats-server ≥ 2.14, ADR-51), kept in a stream of their
// own, BOTMESH_SCHEDULES, rather than in BOTMESH_IN:
//
//   - BOTMESH_IN is a work queue with a 10-minute MaxAge; a schedule must
//     stay until it is removed (every, cron) or has fired (in, at), and
//     nats-server fires a schedule into its own stream only.
//   - Only routers may publish on bot.v1.sched.> (NATS permissions): a
//     gateway can neither set a schedule nor forge a fired command, so
//     the platform in a fired command's subject, which the router wrote
//     from the subject its message came in on, is trusted as that was.
//
// Subjects:
//
//	bot.v1.sched.def.<conv>.<user>.<id>  a schedule: Nats-Schedule headers and
//	                                     the chatops.v1.Event that set it, its
//	                                     data the command to run. <conv> and
//	                                     <user> are hashes (ScheduleKey) of the
//	                                     conversation and of its author, so a
//	                                     conversation's, or a user's, schedules
//	                                     are found by subject.
//	bot.v1.sched.fire.<platform>         where nats-server puts a copy each time
//	                                     it fires (Nats-Schedule-Target); the
//	                                     routers' shared consumer reads them
//	bot.v1.sched.unset.<id>              a router removes schedule <id>
//	                                     (Nats-Schedule-Next: purge)
//
// Each fired copy carries a time to live (ScheduleFireTTL): one no router
// took by then is dropped, as BOTMESH_IN drops messages.
const (
	ScheduleStream   = "BOTMESH_SCHEDULES"
	ScheduleConsumer = "routers"

	SchedulePrefix     = "bot.v1.sched."
	ScheduleDefPrefix  = SchedulePrefix + "def."
	ScheduleFirePrefix = SchedulePrefix + "fire."
	ScheduleUnsetPfx   = SchedulePrefix + "unset."
)

// Headers of a schedule, besides nats-server's Nats-Schedule ones; the
// server copies them into each fired message.
const (
	// HeaderScheduleID is the schedule's id, as users name it.
	HeaderScheduleID = "Botmesh-Schedule-Id"
	// HeaderScheduleDesc is the schedule as the user wrote it ("every 1h").
	HeaderScheduleDesc = "Botmesh-Schedule-Desc"
	// HeaderScheduleOnce is when a one-time schedule fires (RFC 3339).
	HeaderScheduleOnce = "Botmesh-Schedule-Once"
)

// ScheduleFireTTL is how long a fired command waits for a router; later it
// is dropped (run an hour late it would surprise more than help).
const ScheduleFireTTL = 10 * time.Minute

// ScheduleKey returns the subject token for a conversation or a user: a
// hash of parts (platform, ids), which may hold any characters.
func ScheduleKey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}

// ScheduleDef returns the subject of schedule id.
func ScheduleDef(conv, user, id string) string {
	return ScheduleDefPrefix + conv + "." + user + "." + id
}

// ScheduleFire returns the subject platform's schedules fire on.
func ScheduleFire(platform string) string { return ScheduleFirePrefix + platform }

// EnsureScheduleStream creates the schedules stream, or updates it, with
// replicas copies.
func EnsureScheduleStream(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	return EnsureStreamConfig(ctx, js, jetstream.StreamConfig{
		Name:              ScheduleStream,
		Description:       "botmesh scheduled commands (message schedules) and the commands they fire",
		Subjects:          []string{SchedulePrefix + ">"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          max(replicas, 1),
		Duplicates:        2 * time.Minute,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
		AllowMsgTTL:       true,
		AllowMsgSchedules: true,
	})
}

// EnsureScheduleConsumer creates the routers' shared consumer of fired
// commands, or updates it.
func EnsureScheduleConsumer(ctx context.Context, js jetstream.JetStream, ackWait time.Duration, maxDeliver int) (jetstream.Consumer, error) {
	c, err := EnsureConsumer(ctx, js, ScheduleStream, jetstream.ConsumerConfig{
		Durable:       ScheduleConsumer,
		Description:   "botmesh routers: scheduled commands to run",
		FilterSubject: ScheduleFirePrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    maxDeliver,
		MaxAckPending: 1024,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("durable: consumer %s of %s: %w", ScheduleConsumer, ScheduleStream, err)
	}
	return c, nil
}
