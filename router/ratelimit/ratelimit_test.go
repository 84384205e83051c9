package ratelimit

import (
	"testing"
	"time"
)

// clock is a settable time for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newAt(cfg Config) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	l := New(cfg)
	l.now = c.now
	return l, c
}

// allow takes n commands of user U in channel C and fails on a refusal.
func allow(t *testing.T, l *Limiter, n int) {
	t.Helper()
	for i := range n {
		if r := l.Allow("U", "C"); r != nil {
			t.Fatalf("command %d refused: %+v", i+1, *r)
		}
	}
}

func TestRefusalNamesTheBurst(t *testing.T) {
	l, _ := newAt(Config{UserPerMinute: 30, UserBurst: 10})
	allow(t, l, 10)
	r := l.Allow("U", "C")
	if r == nil || r.Scope != "user" || r.Burst != 10 || r.PerMinute != 30 || r.RetryAfter != 2*time.Second {
		t.Fatalf("11th command at once: %+v, want the user's burst of 10, retry in 2s", r)
	}
}

func TestRefusalNamesTheRate(t *testing.T) {
	// One command every 10s is the rate; two more at once fill the burst;
	// a minute on, one more is over the rate.
	l, c := newAt(Config{UserPerMinute: 6, UserBurst: 2})
	allow(t, l, 2)
	for range 6 {
		c.t = c.t.Add(10 * time.Second)
		allow(t, l, 1)
	}
	c.t = c.t.Add(time.Second)
	r := l.Allow("U", "C")
	if r == nil || r.Burst != 0 || r.PerMinute != 6 || r.RetryAfter != 9*time.Second {
		t.Fatalf("8 commands in 61s: %+v, want the rate of 6, retry in 9s", r)
	}
}

func TestRefusalBurstOverTheRate(t *testing.T) {
	// A burst larger than the per-minute rate: the 11th command at once
	// is more than 6 in a minute.
	l, _ := newAt(Config{UserPerMinute: 6, UserBurst: 10})
	allow(t, l, 10)
	if r := l.Allow("U", "C"); r == nil || r.Burst != 0 {
		t.Fatalf("11th command at once with 6 a minute: %+v, want the rate", r)
	}
}

func TestRefusalBurstAgainOnceFull(t *testing.T) {
	l, c := newAt(Config{UserPerMinute: 6, UserBurst: 2})
	allow(t, l, 2)
	if r := l.Allow("U", "C"); r == nil || r.Burst != 2 {
		t.Fatalf("3rd command at once: %+v, want the burst of 2", r)
	}
	c.t = c.t.Add(20 * time.Second) // full again
	allow(t, l, 2)
	if r := l.Allow("U", "C"); r == nil || r.Burst != 2 {
		t.Fatalf("3rd command at once after the bucket refilled: %+v, want the burst of 2", r)
	}
}

func TestChannelLimit(t *testing.T) {
	l, _ := newAt(Config{ChannelPerMinute: 60, ChannelBurst: 3})
	allow(t, l, 3)
	if r := l.Allow("U2", "C"); r == nil || r.Scope != "channel" || r.Burst != 3 {
		t.Fatalf("4th command in the channel: %+v, want the channel's burst of 3", r)
	}
	if r := l.Allow("U", "C2"); r != nil {
		t.Fatalf("another channel refused: %+v", *r)
	}
}
