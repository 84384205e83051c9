package adapter_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// fakeConn is a receive call that gives msgs, then err (or waits for ctx
// when err is nil), and records the stop call.
type fakeConn struct {
	msgs     []string
	err      error
	stopped  chan struct{}
	deadline time.Duration // until the stop context's deadline
}

func (f *fakeConn) recv(ctx context.Context) (*chatopsv1.Event, error) {
	if len(f.msgs) > 0 {
		m := f.msgs[0]
		f.msgs = f.msgs[1:]
		return &chatopsv1.Event{Id: m, Data: []byte(m)}, nil
	}
	if f.err != nil {
		return nil, f.err
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *fakeConn) stop(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		f.deadline = time.Until(d)
	}
	if ctx.Err() != nil {
		return errors.New("stop given an ended context")
	}
	close(f.stopped)
	return nil
}

func TestDrive(t *testing.T) {
	boom := errors.New("connection refused for good")
	for _, tc := range []struct {
		name    string
		err     error // recv's after the messages; nil: wait for ctx
		emitErr bool  // emit fails on the second message
		want    error
		emitted int
	}{
		{name: "end of input is a clean end", err: io.EOF, emitted: 2},
		{name: "stopped input is a clean end", err: adapter.ErrClosed, emitted: 2},
		{name: "a failure is returned", err: boom, want: boom, emitted: 2},
		{name: "cancel stops it", emitted: 2},
		{name: "emit failing stops it", emitErr: true, emitted: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeConn{msgs: []string{"a", "b"}, err: tc.err, stopped: make(chan struct{})}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var got []string
			emit := func(ctx context.Context, ev *chatopsv1.Event) error {
				got = append(got, string(ev.GetData()))
				if len(got) == 2 {
					if tc.emitErr {
						cancel()
						return ctx.Err()
					}
					if tc.err == nil {
						cancel()
					}
				}
				return nil
			}
			done := make(chan error, 1)
			go func() { done <- adapter.Drive(ctx, emit, f.recv, f.stop) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Errorf("Drive returned %v, want %v", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Drive did not return")
			}
			if len(got) != tc.emitted {
				t.Errorf("emitted %q, want %d messages", got, tc.emitted)
			}
			select {
			case <-f.stopped:
			default:
				t.Fatal("stop was not called (or given an ended context)")
			}
			if f.deadline <= 0 || f.deadline > adapter.StopGrace {
				t.Errorf("stop had %s left, want at most adapter.StopGrace (%s)", f.deadline, adapter.StopGrace)
			}
		})
	}
}
