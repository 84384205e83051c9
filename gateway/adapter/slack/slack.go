// Package slackgw is the Slack input: it receives app mentions, direct
// messages and a slash command, through Socket Mode (the default: an
// outbound websocket, no public URL) or the Events API over HTTP, and posts
// the replies in the thread of the message they answer.
//
// The package lives in gateway/adapter/slack; it is named slackgw so that
// it does not collide with github.com/slack-go/slack, which it wraps.
package slackgw

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/slack-go/slack"
)

// Name is the input's name and platform.
const Name = "slack"

// Input is the Slack input; it is its own Conn.
//
// Lifecycle: Flags, Init, Start (auth.test, then the socket or the HTTP
// listener), Run (Recv until its context ends, then Stop) with Send
// alongside. Goroutines run from Start to Stop.
type Input struct {
	cfg   Config
	files secretFiles
	opts  options
	log   *slog.Logger

	hc   *http.Client // every Slack call, so Stop can close its connections
	gate *reconnectGate
	api  *slack.Client
	self identity
	// prefix addresses the bot in channels (--prefix).
	prefix string

	events   chan *chatopsv1.Event // to Recv
	done     chan struct{}         // closed by Stop
	stopOnce sync.Once
	cancel   context.CancelFunc // ends the goroutines Start began
	wg       sync.WaitGroup

	mu    sync.Mutex   // guards the fields below
	srv   *http.Server // http mode
	ln    net.Listener
	state connState
}

// connState is what Healthy reports.
type connState struct {
	up      bool
	since   time.Time
	attempt int
	err     error
}

var (
	_ adapter.Input    = (*Input)(nil)
	_ adapter.Starter  = (*Input)(nil)
	_ adapter.Healther = (*Input)(nil)
)

// options are test seams and tuning that are not flags.
type options struct {
	backoffBase time.Duration // first delay before reconnecting after a short-lived connection
	backoffMax  time.Duration
	stableAfter time.Duration // a connection that lived this long resets the backoff
	queue       int           // events buffered between Slack and Recv
}

// Option changes an Input made by NewInput.
type Option func(*options)

// WithReconnectBackoff sets the delay before reconnecting after a socket
// that dropped soon after it opened (doubling up to max); default 1s and
// 1m. A connection that lived longer than stable (default 30s) reconnects
// at once: Slack refreshes healthy sockets every few hours.
func WithReconnectBackoff(base, max, stable time.Duration) Option {
	return func(o *options) { o.backoffBase, o.backoffMax, o.stableAfter = base, max, stable }
}

// WithQueueSize sets how many received messages wait for Recv (default
// 256). When the queue stays full, Socket Mode stops reading the socket
// and the http mode answers 503, so Slack redelivers later.
func WithQueueSize(n int) Option {
	return func(o *options) { o.queue = max(n, 1) }
}

// New returns a Slack input with the default options, for the gateway's
// input registry.
func New() adapter.Configurable { return NewInput() }

// NewInput returns a Slack input; Flags and Init configure it.
func NewInput(opts ...Option) *Input {
	o := options{backoffBase: time.Second, backoffMax: time.Minute, stableAfter: 30 * time.Second, queue: 256}
	for _, f := range opts {
		f(&o)
	}
	return &Input{
		cfg:    DefaultConfig(),
		opts:   o,
		log:    slog.New(slog.DiscardHandler),
		events: make(chan *chatopsv1.Event, o.queue),
		done:   make(chan struct{}),
		state:  connState{err: errors.New("slack: not started")},
	}
}

// String implements adapter.Input.
func (in *Input) String() string { return Name }

// SharedConversations reports that a sibling replica can post this input's
// replies (any replica posts with the bot token).
func (in *Input) SharedConversations() bool { return true }

// Flags implements adapter.Configurable.
func (in *Input) Flags(fs *flag.FlagSet) { in.cfg.registerFlags(fs, &in.files) }

// Init implements adapter.Configurable: it reads the secret files and checks the
// configuration. It connects nowhere.
func (in *Input) Init(env adapter.Env) error {
	if env.Log != nil {
		in.log = env.Log.With("mode", in.cfg.Mode)
	}
	in.prefix = env.Prefix
	if err := in.cfg.readSecretFiles(in.files); err != nil {
		return err
	}
	return in.cfg.Validate()
}

// Config returns the configuration (secrets stay redacted when printed).
func (in *Input) Config() Config { return in.cfg }

// Start implements adapter.Starter: it checks the bot token (auth.test, which
// also names the bot user whose own messages are ignored), then opens the
// socket or starts the HTTP listener. It returns once connected or when
// the first attempt failed.
func (in *Input) Start(ctx context.Context) error {
	select {
	case <-in.done:
		return adapter.ErrClosed
	default:
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	in.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	in.gate = &reconnectGate{
		stable: in.opts.stableAfter,
		b:      backoff{base: in.opts.backoffBase, max: in.opts.backoffMax},
		log: func(lived, delay time.Duration) {
			in.log.Info("socket closed soon after it opened; waiting before reopening", "connected_for", lived.Round(time.Millisecond), "delay", delay)
		},
	}
	opts := []slack.Option{
		slack.OptionAPIURL(in.cfg.APIURL),
		slack.OptionHTTPClient(gatedClient{c: in.hc, gate: in.gate}),
		slack.OptionLog(log.New(slogWriter{in.log}, "", 0)),
	}
	if in.cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(in.cfg.AppToken.Reveal()))
	}
	in.api = slack.New(in.cfg.BotToken.Reveal(), opts...)

	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	auth, err := in.api.AuthTestContext(actx)
	cancel()
	if err != nil {
		in.setState(false, 0, fmt.Errorf("slack: auth.test: %w", err))
		return fmt.Errorf("slack: check bot token (auth.test): %w", err)
	}
	in.self = identity{UserID: auth.UserID, BotID: auth.BotID, TeamID: auth.TeamID, Name: auth.User, Prefix: in.prefix}
	in.log = in.log.With("team", auth.TeamID)
	in.log.Info("slack bot identified", "bot_user", auth.UserID, "bot_id", auth.BotID, "team_name", auth.Team)

	bg, cancelBG := context.WithCancel(context.WithoutCancel(ctx))
	in.cancel = cancelBG
	if in.cfg.Mode == ModeHTTP {
		return in.startHTTP()
	}
	return in.startSocket(ctx, bg)
}

// Run implements adapter.Input: it hands each message Recv returns to
// emit until ctx ends, then stops (Stop, with adapter.StopGrace).
func (in *Input) Run(ctx context.Context, emit adapter.Emit) error {
	return adapter.Drive(ctx, emit, in.Recv, in.Stop)
}

// Stop ends the input (Run calls it when its context ends): it closes the
// socket or the listener and waits (within ctx) for the input's goroutines
// to end.
func (in *Input) Stop(ctx context.Context) error {
	var err error
	in.stopOnce.Do(func() {
		close(in.done)
		if in.cancel != nil {
			in.cancel()
		}
		in.mu.Lock()
		srv := in.srv
		in.mu.Unlock()
		if srv != nil {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if serr := srv.Shutdown(sctx); serr != nil {
				_ = srv.Close()
			}
			cancel()
		}
		finished := make(chan struct{})
		go func() {
			in.wg.Wait()
			close(finished)
		}()
		select {
		case <-finished:
		case <-ctx.Done():
			err = fmt.Errorf("slack: stop: %w", ctx.Err())
		}
		if in.hc != nil {
			in.hc.CloseIdleConnections()
		}
		in.setState(false, 0, errors.New("slack: stopped"))
		in.log.Info("slack input stopped")
	})
	return err
}

// Recv returns the next message for the mesh; Run hands it on.
func (in *Input) Recv(ctx context.Context) (*chatopsv1.Event, error) {
	select {
	case ev := <-in.events:
		return ev, nil
	default:
	}
	select {
	case ev := <-in.events:
		return ev, nil
	case <-in.done:
		return nil, adapter.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Healthy implements adapter.Healther: nil while the socket is connected
// (or the HTTP listener serves), else what is wrong.
func (in *Input) Healthy() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state.up {
		return nil
	}
	if in.state.attempt > 0 {
		return fmt.Errorf("%w (connection attempt %d)", in.state.err, in.state.attempt)
	}
	return in.state.err
}

func (in *Input) setState(up bool, attempt int, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if up && !in.state.up {
		in.state.since = time.Now()
	}
	in.state.up, in.state.attempt, in.state.err = up, attempt, err
}

// emit hands ev to Recv, waiting at most until ctx ends.
// The event is logged before it is handed on: once Recv has it, it is the
// receiver's to change.
func (in *Input) emit(ctx context.Context, ev *chatopsv1.Event) bool {
	id, to, from, kind := ev.GetId(), ev.GetTo(), ev.GetFrom().GetId(), ev.GetMeta()[MetaEvent]
	select {
	case in.events <- ev:
		in.log.Debug("message received", "event", id, "channel", to, "user", from, "kind", kind)
		return true
	case <-ctx.Done():
		return false
	case <-in.done:
		return false
	}
}

// slogWriter sends slack-go's log lines (debug only; slack-go logs when
// its debug option is on, which this input never turns on) to the input's
// logger.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("slack-go", "msg_text", strings.TrimSpace(string(p)))
	return len(p), nil
}
