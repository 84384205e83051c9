package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of Publish. Both mean the deadline passed without the stream's
// acknowledgement; they differ in what is known.
var (
	// ErrNotStored means no attempt can have been stored: every one was
	// refused before it reached a stream (no stream answered, or the
	// connection was closed).
	ErrNotStored = errors.New("durable: not stored")
	// ErrNotConfirmed means an attempt may have been stored: its
	// acknowledgement was lost (a timeout, a connection that dropped
	// meanwhile). The stream's de-duplication makes a later retry with the
	// same message id safe, and what was stored is acted on.
	ErrNotConfirmed = errors.New("durable: not confirmed")
)

// PublishAttempt bounds the wait for one attempt's acknowledgement. A NATS
// server that restarts, or a stream whose leader is being elected, takes a
// few seconds; each attempt waits this long, and Publish tries again until
// its context ends.
const PublishAttempt = 2 * time.Second

// publishBackoff is the wait between attempts: it starts at first and
// doubles up to most.
const (
	backoffFirst = 100 * time.Millisecond
	backoffMost  = time.Second
)

// Publish stores msg in the stream that captures its subject, trying again
// with the same message id (the msg's Nats-Msg-Id header, which must be set)
// until the stream acknowledges it or ctx ends. A stream without a leader, a
// connection that is reconnecting, and a lost acknowledgement are all tried
// again: the stream's duplicate window drops a repeated id, and the
// acknowledgement of a repeat says Duplicate.
//
// When ctx ends first, the error wraps ErrNotConfirmed if some attempt may
// have been stored and ErrNotStored if none can have been. An error the
// stream answers (a message too large, a closed connection) is returned at
// once, wrapping ErrNotStored.
func Publish(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) (*jetstream.PubAck, error) {
	if msg.Header.Get(jetstream.MsgIDHeader) == "" {
		return nil, fmt.Errorf("durable: publish to %s without a message id", msg.Subject)
	}
	wait := backoffFirst
	maybeStored := false
	var last error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, PublishAttempt)
		ack, err := js.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return ack, nil
		}
		last = err
		switch retry, stored := classify(err); {
		case !retry:
			return nil, fmt.Errorf("%w: %w", ErrNotStored, err)
		case stored:
			maybeStored = true
		}
		select {
		case <-ctx.Done():
			if maybeStored {
				return nil, fmt.Errorf("%w after %d attempts: %w", ErrNotConfirmed, attempt, last)
			}
			return nil, fmt.Errorf("%w after %d attempts: %w", ErrNotStored, attempt, last)
		case <-time.After(wait):
		}
		wait = min(2*wait, backoffMost)
	}
}

// classify says whether a failed attempt is worth another, and whether it
// may have been stored.
func classify(err error) (retry, maybeStored bool) {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrMaxPayload), errors.Is(err, jetstream.ErrInvalidSubject):
		return false, false
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		// Nothing listens: no stream, or its leader is being elected.
		return true, false
	case errors.As(err, &apiErr):
		// The stream answered with an error: it did not store the
		// message, and will answer the same again, unless it is one of
		// the passing states of a cluster.
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamNotFound, // a router will make it
			10008, // JetStream temporarily unavailable (no leader)
			10077: // the store failed (a node going down)
			return true, false
		}
		return false, false
	default:
		// A timeout, a dropped connection, a cancelled attempt: the
		// message may have reached the stream.
		return true, true
	}
}

// SetupTimeout bounds how long a part tries to set up its streams, buckets
// and consumers at start: on a NATS cluster that has just formed, creating
// a replicated stream waits for the meta leader and can take 10 s or more.
const SetupTimeout = time.Minute

// Setup calls f (one attempt, given PublishAttempt×5 to finish) until it
// succeeds, fails for good, or ctx ends: a timeout or a cluster that is
// not available yet is tried again.
func Setup(ctx context.Context, f func(context.Context) error) error {
	wait := backoffFirst
	for {
		actx, cancel := context.WithTimeout(ctx, 5*PublishAttempt)
		err := f(actx)
		cancel()
		if err == nil || !transientSetup(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, backoffMost)
	}
}

// transientSetup reports whether a failed set-up step may succeed if tried
// again.
func transientSetup(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return true
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode {
		case 10008: // JetStream temporarily unavailable
			return true
		case 10049: // nats-server JSStreamStoreFailedF
			// "error creating store for stream": seen once in CI, a
			// moment after the old reply stream was removed, while
			// many other tests ran; the next attempt is worth making.
			return true
		}
	}
	return false
}
