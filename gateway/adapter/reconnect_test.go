package adapter_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
)

// The first attempt's failure is reported and ends the loop: a wrong
// address or password is said, not retried.
func TestBackoffFirstFailureReturns(t *testing.T) {
	first := make(chan error, 1)
	calls := 0
	refused := errors.New("refused")
	adapter.Backoff{Initial: time.Millisecond, Max: time.Millisecond}.Run(context.Background(), slog.New(slog.DiscardHandler), first,
		func(context.Context) (func(context.Context) error, error) {
			calls++
			return nil, refused
		})
	if err := <-first; !errors.Is(err, refused) || calls != 1 {
		t.Errorf("first = %v after %d attempts, want the refusal after 1", err, calls)
	}
}

// Waits between failed attempts double up to Max, start again from
// Initial once a connection was up, and the loop ends with ctx.
func TestBackoffWaits(t *testing.T) {
	const initial, maxWait = 100 * time.Millisecond, 250 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		attempts []time.Time
	)
	// Attempt 1 connects and the connection ends; 2-5 fail; 6 connects
	// and ends; 7 fails; then the test ends.
	plan := []bool{true, false, false, false, false, true, false}
	first := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		adapter.Backoff{Initial: initial, Max: maxWait}.Run(ctx, slog.New(slog.DiscardHandler), first,
			func(context.Context) (func(context.Context) error, error) {
				mu.Lock()
				defer mu.Unlock()
				n := len(attempts)
				attempts = append(attempts, time.Now())
				if n == len(plan)-1 {
					cancel()
				}
				if n < len(plan) && plan[n] {
					return func(context.Context) error { return errors.New("connection reset") }, nil
				}
				return nil, errors.New("unreachable")
			})
	}()
	if err := <-first; err != nil {
		t.Fatalf("first = %v, want nil (connected)", err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not end with its context")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != len(plan) {
		t.Fatalf("%d attempts, want %d", len(attempts), len(plan))
	}
	// The wait before attempt i+1: at least the planned one (a loaded
	// machine only makes waits longer).
	want := []time.Duration{initial, 2 * initial, maxWait, maxWait, maxWait, initial}
	for i, w := range want {
		if got := attempts[i+1].Sub(attempts[i]); got < w {
			t.Errorf("wait before attempt %d: %s, want at least %s", i+2, got, w)
		}
	}
	// Capped: the wait after the second failure is Max (and its fifth
	// of jitter), not twice the last.
	if got := attempts[3].Sub(attempts[2]); got >= 4*initial {
		t.Errorf("wait before attempt 4: %s, want about %s (Max)", got, maxWait)
	}
}
