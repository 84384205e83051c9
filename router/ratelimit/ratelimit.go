// Package ratelimit keeps a user, or a whole channel, from running commands
// faster than a set rate. Limits are kept by each router replica: with N
// routers sharing the work a user can reach at most N times the rate.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets the limits, in commands per minute with a burst; 0 turns a
// limit off.
type Config struct {
	UserPerMinute    float64
	UserBurst        int
	ChannelPerMinute float64
	ChannelBurst     int
}

// Limiter applies the limits.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu       sync.Mutex
	users    map[string]*bucket
	channels map[string]*bucket
	swept    time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
	// run counts the commands taken since the bucket was last full, from
	// start: whether a refusal is the burst's or the rate's.
	start time.Time
	run   int
}

// New returns a limiter.
func New(cfg Config) *Limiter {
	return &Limiter{cfg: cfg, now: time.Now, users: map[string]*bucket{}, channels: map[string]*bucket{}}
}

// Refusal says which limit was hit and when to try again.
type Refusal struct {
	Scope     string // "user" or "channel"
	PerMinute float64
	// Burst is the burst that was exceeded when that is what refused the
	// command: its commands came within a minute and were no more than
	// PerMinute. It is 0 when the per-minute rate was exceeded.
	Burst      int
	RetryAfter time.Duration
}

// Allow takes one command of user in channel; it returns nil if allowed.
func (l *Limiter) Allow(user, channel string) *Refusal {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	if r := l.take(l.users, "user", user, l.cfg.UserPerMinute, l.cfg.UserBurst, now); r != nil {
		return r
	}
	return l.take(l.channels, "channel", channel, l.cfg.ChannelPerMinute, l.cfg.ChannelBurst, now)
}

func (l *Limiter) take(m map[string]*bucket, scope, key string, perMinute float64, burst int, now time.Time) *Refusal {
	if perMinute <= 0 || key == "" {
		return nil
	}
	b := m[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(perMinute/60), max(burst, 1))}
		m[key] = b
	}
	b.used = now
	if b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
		b.start, b.run = now, 0
	}
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		r := &Refusal{Scope: scope, PerMinute: perMinute, RetryAfter: d}
		if now.Sub(b.start) < time.Minute && float64(b.run) <= perMinute {
			r.Burst = b.lim.Burst()
		}
		return r
	}
	b.run++
	return nil
}

// sweep forgets buckets idle for ten minutes.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for _, m := range []map[string]*bucket{l.users, l.channels} {
		for k, b := range m {
			if now.Sub(b.used) > 10*time.Minute {
				delete(m, k)
			}
		}
	}
}
