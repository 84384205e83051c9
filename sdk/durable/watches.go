package durable

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// WatchBucket holds the routers' watch lists ("watch greeter") and what
// they last saw of each watched thing, so that both survive restarts and
// every router sees the same. Keys:
//
//	w.<target>.<conv>  a conversation watches target: the chatops.v1.Event
//	                   that asked (its data the target), to post to
//	s.<target>         what was last seen of target (a node count, the
//	                   command services' names, or, for a health watch,
//	                   JSON: the failed checks in a row, the revision
//	                   that began the run, the last reason, the router
//	                   that claimed the check under way)
//
// <target> and <conv> are hashes (ScheduleKey) of the watched thing and of
// the conversation. A router that sees a change announces it under
// message ids named for the change (the revision of s.<target> it read and
// the new value), so that every router's announcement of it is stored
// once, then moves s.<target> to the new value (an update at the revision
// it read: one router's wins). A health watch's value is written at every
// check, by the one router that claimed it at the revision it read.
const WatchBucket = "botmesh_watches"

// Key prefixes of WatchBucket.
const (
	WatchKeyPrefix = "w."
	WatchSeenKey   = "s."
)

// EnsureWatches creates the watches bucket, or updates it, with replicas
// copies.
func EnsureWatches(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      WatchBucket,
		Description: "botmesh watch lists and what was last seen of each watched service",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("durable: bucket %s: %w", WatchBucket, err)
	}
	return kv, nil
}
