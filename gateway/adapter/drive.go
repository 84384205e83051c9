package adapter

import (
	"context"
	"errors"
	"io"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// StopGrace is how long an input, once its context ends, gives queued
// replies to go out before it disconnects.
const StopGrace = 5 * time.Second

// Drive is Run for an input built from a receive call and a stop call: it
// passes each message recv returns to emit until ctx ends or recv fails,
// then calls stop with StopGrace to finish. recv returns io.EOF when the
// input has ended for good (Drive returns nil) and ErrClosed once stopped.
func Drive(ctx context.Context, emit Emit, recv func(context.Context) (*chatopsv1.Event, error), stop func(context.Context) error) error {
	var err error
	for {
		var ev *chatopsv1.Event
		if ev, err = recv(ctx); err != nil {
			break
		}
		if err = emit(ctx, ev); err != nil {
			break
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopGrace)
	defer cancel()
	serr := stop(sctx)
	switch {
	case errors.Is(err, io.EOF), ctx.Err() != nil, errors.Is(err, ErrClosed):
		return serr
	default:
		return errors.Join(err, serr)
	}
}
