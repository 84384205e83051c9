package durable

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClaimBucket holds the routers' claims on messages: a router writes a
// message's claim (its reply subject) before it runs the message's
// command, and only one write can create it. The stream can hand a message
// out again while its first router still works on it (a NATS server killed
// before it saved the consumer's state, a new consumer leader in a
// cluster); the claim keeps the command from running twice.
const ClaimBucket = "botmesh_claims"

// ClaimTTL is how long a claim is kept: longer than a message may wait in
// the inbound stream plus the longest command.
const ClaimTTL = time.Hour

// Claims are the routers' claims on messages.
type Claims struct{ kv jetstream.KeyValue }

// EnsureClaims creates the claims bucket, or updates it, with replicas
// copies.
func EnsureClaims(ctx context.Context, js jetstream.JetStream, replicas int) (*Claims, error) {
	kv, err := EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      ClaimBucket,
		Description: "botmesh routers' claims on the messages they run",
		TTL:         ClaimTTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("durable: bucket %s: %w", ClaimBucket, err)
	}
	return &Claims{kv: kv}, nil
}

// claimKey is the key of the claim on the message answered on reply (a
// valid reply subject): its tokens after bot.v1.out.
func claimKey(reply string) string { return strings.TrimPrefix(reply, chatopsv1.SubjectOutPrefix) }

// Claim records that owner runs the message answered on reply. It returns
// "" when the claim is owner's now, or the owner of an earlier claim.
// It tries again while NATS does not answer, until ctx ends.
func (c *Claims) Claim(ctx context.Context, reply, owner string) (string, error) {
	key := claimKey(reply)
	wait := backoffFirst
	for {
		actx, cancel := context.WithTimeout(ctx, PublishAttempt)
		_, err := c.kv.Create(actx, key, []byte(owner))
		if errors.Is(err, jetstream.ErrKeyExists) {
			var e jetstream.KeyValueEntry
			e, err = c.kv.Get(actx, key)
			cancel()
			if err == nil {
				return string(e.Value()), nil
			}
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue // expired meanwhile: claim it
			}
		} else {
			cancel()
			if err == nil {
				return "", nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("durable: claim %s: %w", key, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, backoffMost)
	}
}

// Take moves the claim on the message answered on reply from a router that
// is gone (from) to owner; it reports false if another router took it
// first.
func (c *Claims) Take(ctx context.Context, reply, from, owner string) (bool, error) {
	key := claimKey(reply)
	e, err := c.kv.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("durable: claim %s: %w", key, err)
	}
	if string(e.Value()) != from {
		return false, nil
	}
	if _, err := c.kv.Update(ctx, key, []byte(owner), e.Revision()); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return false, nil
		}
		return false, fmt.Errorf("durable: claim %s: %w", key, err)
	}
	return true, nil
}

// RouterAlive reports whether the router whose NATS service id is id
// answers a ping within wait; a failure other than "no responders" counts
// as alive (nothing certain).
func RouterAlive(nc *nats.Conn, id string, wait time.Duration) bool {
	_, err := nc.Request("$SRV.PING."+RouterService+"."+id, nil, wait)
	return !errors.Is(err, nats.ErrNoResponders)
}
