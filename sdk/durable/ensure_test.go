package durable_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// Every stream maker and the bucket maker, on a NATS server without JetStream, says what to do
// about it in one sentence; on one with JetStream, an invalid config names
// the stream.
func TestEnsureStreamWithoutJetStream(t *testing.T) {
	js := meshtest.JetStream(t, meshtest.NATS(t, func(o *server.Options) { o.JetStream = false }).ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	makers := map[string]func() (jetstream.Stream, error){
		"inbound":   func() (jetstream.Stream, error) { return durable.EnsureStream(ctx, js, durable.StreamConfig{}) },
		"reply":     func() (jetstream.Stream, error) { return durable.EnsureReplyStream(ctx, js, "slack", 1) },
		"events":    func() (jetstream.Stream, error) { return durable.EnsureEventsStream(ctx, js, 1) },
		"schedules": func() (jetstream.Stream, error) { return durable.EnsureScheduleStream(ctx, js, 1) },
	}
	for name, ensure := range makers {
		if _, err := ensure(); !errors.Is(err, durable.ErrNoJetStream) || !strings.Contains(err.Error(), "start nats-server with -js") {
			t.Errorf("%s stream without JetStream: %v, want %v", name, err, durable.ErrNoJetStream)
		}
	}
	if _, err := durable.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "notes"}); !errors.Is(err, durable.ErrNoJetStream) {
		t.Errorf("bucket without JetStream: %v, want %v", err, durable.ErrNoJetStream)
	}

	_, err := durable.EnsureStreamConfig(ctx, meshtest.JetStream(t, meshtest.NATS(t).ClientURL()), jetstream.StreamConfig{Name: "BAD", Subjects: []string{"a.>", "a.b"}})
	if err == nil || !strings.HasPrefix(err.Error(), "durable: stream BAD: ") {
		t.Errorf("overlapping subjects: %v, want an error naming the stream", err)
	}
}
