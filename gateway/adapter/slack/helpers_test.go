package slackgw_test

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	slackgw "github.com/botmesh/botmesh/gateway/adapter/slack"
	"github.com/botmesh/botmesh/gateway/adapter/slack/fakeslack"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// newInput returns an input configured as a user would (flags) against
// the fake Slack, Init'ed, not started. The log goes to the test's output
// and to logTo if not nil.
func newInput(t *testing.T, fs *fakeslack.Server, logTo io.Writer, args ...string) *slackgw.Input {
	t.Helper()
	return newInputWith(t, fs, logTo, nil, args...)
}

func newInputWith(t *testing.T, fs *fakeslack.Server, logTo io.Writer, opts []slackgw.Option, args ...string) *slackgw.Input {
	t.Helper()
	in := slackgw.NewInput(opts...)
	flags := flag.NewFlagSet("test", flag.ContinueOnError)
	in.Flags(flags)
	all := append([]string{
		"--slack_app_token", fs.AppToken,
		"--slack_bot_token", fs.BotToken,
		"--slack_signing_secret", fs.SigningSecret,
		"--slack_api_url", fs.APIURL(),
		"--slack_listen", "127.0.0.1:0",
	}, args...)
	if err := flags.Parse(all); err != nil {
		t.Fatal(err)
	}
	var w io.Writer = t.Output()
	if logTo != nil {
		w = io.MultiWriter(t.Output(), logTo)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := in.Init(adapter.Env{Log: log, Prefix: adapter.DefaultPrefix}); err != nil {
		t.Fatal(err)
	}
	return in
}

// startInput is newInput and Start; the input stops when the test ends.
func startInput(t *testing.T, fs *fakeslack.Server, logTo io.Writer, args ...string) *slackgw.Input {
	t.Helper()
	return startInputWith(t, fs, logTo, nil, args...)
}

func startInputWith(t *testing.T, fs *fakeslack.Server, logTo io.Writer, opts []slackgw.Option, args ...string) *slackgw.Input {
	t.Helper()
	in := newInputWith(t, fs, logTo, opts, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := in.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return in
}

func eventsURL(in *slackgw.Input) string { return "http://" + in.Addr().String() + slackgw.EventsPath }

// recv returns the next event the input passes on, failing t after d.
func recv(t *testing.T, in *slackgw.Input, d time.Duration) *chatopsv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ev, err := in.Recv(ctx)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return ev
}

// noRecv fails t if the input passes an event on within d.
func noRecv(t *testing.T, in *slackgw.Input, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if ev, err := in.Recv(ctx); err == nil {
		t.Fatalf("unexpected event %s %q", ev.GetId(), ev.GetData())
	}
}

// reply is the router's answer to ev.
func reply(ev *chatopsv1.Event, typ chatopsv1.EventType, text string) *chatopsv1.Event {
	return &chatopsv1.Event{
		Type: typ, Data: []byte(text), InReplyTo: ev.GetId(),
		To: ev.GetTo(), Thread: ev.GetThread(), Meta: ev.GetMeta(), Platform: ev.GetPlatform(),
	}
}
