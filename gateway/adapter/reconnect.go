package adapter

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Backoff keeps an input connected: the one reconnect loop the inputs
// that hold a connection (XMPP, IRC) share.
type Backoff struct {
	// Initial is the first wait after a connection ends or an attempt
	// fails; each failed attempt doubles it, up to Max. A connection that
	// was up starts the waits again from Initial.
	Initial, Max time.Duration
}

// Run connects and serves until ctx ends: connect makes a connection and
// returns the function that serves it until it ends (with why), or an
// error. Between attempts it waits as b says, plus up to a fifth more, so
// that many gateways do not all come back at the same instant. The first
// attempt's error (nil once connected) goes to first, if not nil; when the
// first attempt fails Run returns, since a wrong address or password is
// better reported than retried.
func (b Backoff) Run(ctx context.Context, log *slog.Logger, first chan<- error, connect func(context.Context) (serve func(context.Context) error, err error)) {
	wait := b.Initial
	for attempt := 1; ; attempt++ {
		serve, err := connect(ctx)
		if first != nil {
			first <- err
			first = nil
			if err != nil {
				return
			}
		}
		if err == nil {
			err = serve(ctx)
			attempt, wait = 1, b.Initial
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("disconnected; reconnecting", "err", err, "attempt", attempt, "retry_in", wait)
		t := time.NewTimer(wait + rand.N(wait/5+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}
