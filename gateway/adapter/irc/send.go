package ircgw

import (
	"context"
	"fmt"
	"sync"
	"time"
)

const (
	// maxQueued is the most reply lines waiting to be sent; beyond it Send
	// refuses replies (at 1 line per second, an hour of output).
	maxQueued = 3600
	// maxWait is how long a line waits for its channel to be joined (the
	// bot was kicked or banned) before it is dropped.
	maxWait = 5 * time.Minute
)

type outLine struct {
	seq    uint64
	target string
	text   string
	queued time.Time
}

// outbox is the paced queue of reply lines for one input: a token bucket
// of burst lines, refilled with one line per interval.
type outbox struct {
	burst    float64
	interval time.Duration

	mu     sync.Mutex
	lines  []outLine
	seq    uint64
	tokens float64
	last   time.Time
	wake   chan struct{} // holds a value when lines were added
}

func newOutbox(burst int, interval time.Duration) *outbox {
	return &outbox{burst: float64(burst), interval: interval, tokens: float64(burst), wake: make(chan struct{}, 1)}
}

// batch is lines for one target.
type batch struct {
	target string
	lines  []string
}

// add queues the batches' lines, in order, all or none.
func (o *outbox) add(batches ...batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, b := range batches {
		n += len(b.lines)
	}
	if len(o.lines)+n > maxQueued {
		return fmt.Errorf("send queue full (%d lines waiting)", len(o.lines))
	}
	now := time.Now()
	for _, b := range batches {
		for _, l := range b.lines {
			o.seq++
			o.lines = append(o.lines, outLine{seq: o.seq, target: b.target, text: l, queued: now})
		}
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// first returns the oldest line whose target is ready. Lines to one target
// keep their order: if its first line is not ready, none is. Lines that
// waited too long for their target are dropped and counted.
func (o *outbox) first(ready func(target string) bool) (outLine, bool, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	dropped := 0
	kept := o.lines[:0]
	for _, l := range o.lines {
		if time.Since(l.queued) > maxWait && !ready(l.target) {
			dropped++
			continue
		}
		kept = append(kept, l)
	}
	clear(o.lines[len(kept):])
	o.lines = kept
	for _, l := range o.lines {
		if ready(l.target) {
			return l, true, dropped
		}
	}
	return outLine{}, false, dropped
}

// done removes a sent line.
func (o *outbox) done(seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, l := range o.lines {
		if l.seq == seq {
			o.lines = append(o.lines[:i], o.lines[i+1:]...)
			return
		}
	}
}

// reserve takes a token and returns how long to wait before using it.
func (o *outbox) reserve(now time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.interval <= 0 {
		return 0
	}
	if !o.last.IsZero() {
		o.tokens = min(o.burst, o.tokens+float64(now.Sub(o.last))/float64(o.interval))
	}
	o.last = now
	o.tokens--
	if o.tokens >= 0 {
		return 0
	}
	return time.Duration(-o.tokens * float64(o.interval))
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.lines)
}

// drain waits up to d (and until ctx ends) for the queue to empty and
// returns how many lines are left.
func (o *outbox) drain(ctx context.Context, d time.Duration) int {
	deadline := time.Now().Add(d)
	for o.len() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	return o.len()
}

// send posts queued lines, paced, while the input runs: each line when its
// target is ready (the bot is connected, and in the channel), in order per
// target. A line the connection refuses stays queued for the next one.
func (in *Input) send(ctx context.Context) {
	for {
		l, change := in.current()
		var line outLine
		ok := false
		if l != nil {
			var dropped int
			line, ok, dropped = in.out.first(l.ready)
			if dropped > 0 {
				in.log.Warn("reply lines dropped: their channel was not joined for 5 minutes", "lines", dropped)
			}
		}
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-change:
			case <-in.out.wake:
			case <-time.After(time.Minute): // expire lines for lost channels
			}
			continue
		}
		if wait := in.out.reserve(time.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if err := l.c.Privmsg(line.target, line.text); err != nil {
			in.log.Debug("line not sent; waiting for the connection", "target", line.target, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-change:
			}
			continue
		}
		in.out.done(line.seq)
	}
}
