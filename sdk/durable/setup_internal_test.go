package durable

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A set-up step is tried again after a timeout, a cluster not ready yet,
// or a store nats-server could not create this time; not after an error
// that will come back the same.
func TestTransientSetup(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{nats.ErrTimeout, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{fmt.Errorf("durable: stream BOTMESH_OUT_web: %w", &jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "error creating store for stream"}), true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10065, Description: "subjects overlap with an existing stream"}, false},
		{ErrNoJetStream, false},
		{errors.New("nats: permissions violation"), false},
	} {
		if got := transientSetup(c.err); got != c.want {
			t.Errorf("transientSetup(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
