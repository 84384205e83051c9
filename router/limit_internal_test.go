package router

import (
	"testing"
	"time"

	"github.com/botmesh/botmesh/router/ratelimit"
)

func TestLimitText(t *testing.T) {
	for _, tc := range []struct {
		who  string
		lim  ratelimit.Refusal
		want string
	}{
		{"you", ratelimit.Refusal{Scope: "user", PerMinute: 30, Burst: 10, RetryAfter: 2 * time.Second},
			"slow down: you sent more than 10 commands at once; try again in 3s."},
		{"you", ratelimit.Refusal{Scope: "user", PerMinute: 30, RetryAfter: 1700 * time.Millisecond},
			"slow down: you sent more than 30 commands a minute; try again in 3s."},
		{"this conversation", ratelimit.Refusal{Scope: "channel", PerMinute: 120, Burst: 30, RetryAfter: 400 * time.Millisecond},
			"slow down: this conversation sent more than 30 commands at once; try again in 1s."},
		{"this conversation", ratelimit.Refusal{Scope: "channel", PerMinute: 1.5, RetryAfter: 40 * time.Second},
			"slow down: this conversation sent more than 1.5 commands a minute; try again in 41s."},
	} {
		if got := limitText(tc.who, &tc.lim); got != tc.want {
			t.Errorf("limitText(%q, %+v) = %q, want %q", tc.who, tc.lim, got, tc.want)
		}
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                   "0s",
		1500 * time.Millisecond:        "1s",
		3*time.Minute + 20*time.Second: "3m",
		2*time.Hour + 59*time.Minute:   "2h",
		47 * time.Hour:                 "47h",
		100 * time.Hour:                "4d",
	} {
		if got := ago(d); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
}
