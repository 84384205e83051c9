package router

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	merrors "go-micro.dev/v4/errors"
)

// callError words each kind of failure for the user, without the
// transport's text.
func TestCallErrorWording(t *testing.T) {
	noResponders := merrors.InternalServerError("go.micro.client.transport", "nats: no responders available for request")
	for _, tc := range []struct {
		name     string
		err      error
		timedOut bool
		want     string
	}{
		{"gave up at the deadline", &unreachableError{err: noResponders, took: 29950 * time.Millisecond}, false,
			"echo: could not reach go.micro.bot.echo: none of its instances answered within 30s (they may be restarting); try again shortly"},
		{"gave up early", &unreachableError{err: noResponders, took: 730 * time.Millisecond}, false,
			"echo: could not reach go.micro.bot.echo: none of its instances answered within 700ms (they may be restarting); try again shortly"},
		{"gave up, then the deadline passed", fmt.Errorf("call: %w", &unreachableError{err: noResponders, took: 29990 * time.Millisecond}), true,
			"echo: could not reach go.micro.bot.echo: none of its instances answered within 30s (they may be restarting); try again shortly"},
		{"undelivered", noResponders, false,
			"echo: could not reach go.micro.bot.echo: none of its instances answered (they may be restarting); try again shortly"},
		{"timed out", merrors.Timeout("go.micro.client", "context deadline exceeded"), true,
			"echo: no answer from go.micro.bot.echo within 30s"},
		{"no instance", merrors.InternalServerError("go.micro.client", "service go.micro.bot.echo: not found"), false,
			"echo: no instance of go.micro.bot.echo is running right now"},
		{"handler failed", errors.New("disk on fire"), false,
			"echo: go.micro.bot.echo failed: disk on fire"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := callError("echo", "go.micro.bot.echo", 30*time.Second, tc.err, tc.timedOut)
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if strings.Contains(got, "nats:") {
				t.Errorf("raw NATS text in %q", got)
			}
		})
	}
	// A call given up on is not retried again by go-micro's loop.
	if retry, _ := retryUndelivered(t.Context(), nil, 0, &unreachableError{err: noResponders}); retry {
		t.Error("go-micro would retry a call that was given up on")
	}
	if retry, _ := retryUndelivered(t.Context(), nil, 0, noResponders); !retry {
		t.Error("an undelivered call is not retried")
	}
}
