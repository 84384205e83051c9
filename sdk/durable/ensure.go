package durable

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Creating what is already there. nats.go's CreateOrUpdate* functions try
// an update first and create on "not found"; two routers starting at once
// on a fresh NATS cluster then send an update and a create for the same
// stream together, and nats-server (2.15.2) stops answering stream and
// consumer requests for a while (every later create timed out for over a
// minute in e2e's TestStreamsCreatedConcurrently). A create of a stream,
// bucket or consumer with the config it already has succeeds, so these
// create first and update only what exists with another config.

// EnsureStreamConfig creates the stream of cfg, or updates it to cfg. A
// server without JetStream is ErrNoJetStream; other errors name the stream.
func EnsureStreamConfig(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return nil, streamError(cfg.Name, err)
	}
	return s, nil
}

// streamError words err from making or changing stream name: a server
// without JetStream is ErrNoJetStream; other errors name the stream.
func streamError(name string, err error) error {
	if noJetStream(err) {
		return ErrNoJetStream
	}
	return fmt.Errorf("durable: stream %s: %w", name, err)
}

// noJetStream reports whether err says the server has no JetStream for
// this account: it answers so, or nothing serves the JetStream API at all
// (a server started without -js gives "no responders").
func noJetStream(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, nats.ErrNoResponders)
}

// EnsureKeyValue creates the bucket of cfg, or updates it to cfg. A server
// without JetStream is ErrNoJetStream.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.UpdateKeyValue(ctx, cfg)
	}
	if noJetStream(err) {
		return nil, ErrNoJetStream
	}
	return kv, err
}

// EnsureConsumer creates the durable consumer of cfg on stream, or updates
// it to cfg.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.CreateConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return js.UpdateConsumer(ctx, stream, cfg)
	}
	return c, err
}
