package slackgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// startSocket connects through Socket Mode. The connection lives in bg
// until Stop; ctx bounds the wait for the first connection.
func (in *Input) startSocket(ctx, bg context.Context) error {
	smc := socketmode.New(in.api, socketmode.OptionLog(log.New(slogWriter{in.log}, "", 0)))
	// Unbuffered: slack-go's connection goroutines wait until the input
	// has taken "connected" before they read the socket, so the reconnect
	// gate knows of a connection before it can end.
	smc.Events = make(chan socketmode.Event)

	first := make(chan error, 1)
	var once sync.Once
	report := func(err error) { once.Do(func() { first <- err }) }
	b := &backoff{base: in.opts.backoffBase, max: in.opts.backoffMax}
	in.wg.Go(func() { in.runSocket(bg, smc, b, report) })
	in.wg.Go(func() { in.socketEvents(bg, smc, report) })
	select {
	case err := <-first:
		return err
	case <-ctx.Done():
		return fmt.Errorf("slack: open socket: %w", ctx.Err())
	}
}

// runSocket keeps slack-go's Socket Mode client running. slack-go
// reconnects by itself after a disconnect envelope or a dropped socket;
// RunContext returns only when it gives up (a refused token, say), and
// then this loop starts it again after a backoff.
func (in *Input) runSocket(ctx context.Context, smc *socketmode.Client, b *backoff, report func(error)) {
	for {
		err := smc.RunContext(ctx)
		if ctx.Err() != nil {
			return
		}
		err = fmt.Errorf("slack: open socket: %w", err)
		report(err)
		d := b.next()
		in.setState(false, b.attempts(), err)
		in.log.Warn("socket mode failed; retrying", "err", err, "retry_in", d)
		if !sleep(ctx, d) {
			return
		}
	}
}

// socketEvents takes what slack-go reports: connection changes, and
// Slack's envelopes, each acknowledged at once (Slack redelivers an
// envelope not acknowledged within 3 s) and then handed to Recv.
func (in *Input) socketEvents(ctx context.Context, smc *socketmode.Client, report func(error)) {
	for {
		var evt socketmode.Event
		select {
		case <-ctx.Done():
			return
		case evt = <-smc.Events:
		}
		switch evt.Type {
		case socketmode.EventTypeConnecting:
			c, _ := evt.Data.(*slack.ConnectingEvent)
			if c == nil {
				continue
			}
			in.setState(false, c.Attempt, errors.New("slack: socket mode connecting"))
			if c.ConnectionCount > 0 && c.Attempt == 1 {
				in.log.Info("socket mode reconnecting", "connection", c.ConnectionCount+1)
			}
		case socketmode.EventTypeConnected:
			in.gate.connected()
			in.setState(true, 0, nil)
			if c, _ := evt.Data.(*socketmode.ConnectedEvent); c != nil && c.ConnectionCount > 0 {
				in.log.Info("socket mode reconnected", "connection", c.ConnectionCount+1)
			} else {
				in.log.Info("socket mode connected")
			}
			report(nil)
		case socketmode.EventTypeConnectionError:
			err := errors.New("connection error")
			attempt := 0
			if c, _ := evt.Data.(*slack.ConnectionErrorEvent); c != nil {
				err, attempt = c.ErrorObj, c.Attempt
				in.log.Warn("socket mode connection failed", "err", err, "attempt", c.Attempt, "retry_in", c.Backoff)
			}
			err = fmt.Errorf("slack: open socket: %w", err)
			in.setState(false, attempt, err)
			report(err)
		case socketmode.EventTypeInvalidAuth:
			err := errors.New("slack: open socket: the app-level token was refused")
			in.setState(false, 0, err)
			report(err)
		case socketmode.EventTypeHello:
			n := 0
			if evt.Request != nil {
				n = evt.Request.NumConnections
			}
			in.log.Debug("socket mode hello", "num_connections", n)
		case socketmode.EventTypeEventsAPI:
			in.ack(ctx, smc, evt.Request.EnvelopeID)
			in.handleEnvelope(ctx, evt.Request)
		case socketmode.EventTypeSlashCommand:
			in.ack(ctx, smc, evt.Request.EnvelopeID)
			cmd, _ := evt.Data.(slack.SlashCommand)
			in.handleSlash(ctx, cmd, evt.Request.EnvelopeID, evt.Request.RetryAttempt)
		case socketmode.EventTypeInteractive:
			in.ack(ctx, smc, evt.Request.EnvelopeID)
			in.log.Debug("interactive payload ignored", "envelope", evt.Request.EnvelopeID)
		case socketmode.EventTypeErrorBadMessage:
			// An envelope slack-go could not read. Acknowledge it if it
			// has an id, or Slack sends it again and again.
			bad, _ := evt.Data.(*socketmode.ErrorBadMessage)
			if bad == nil {
				continue
			}
			var env struct {
				EnvelopeID string `json:"envelope_id"`
				Type       string `json:"type"`
			}
			_ = json.Unmarshal(bad.Message, &env)
			if env.EnvelopeID != "" {
				in.ack(ctx, smc, env.EnvelopeID)
			}
			in.log.Warn("malformed socket mode envelope acknowledged and dropped", "envelope", env.EnvelopeID, "envelope_type", env.Type, "bytes", len(bad.Message), "err", bad.Cause)
		case socketmode.EventTypeIncomingError:
			if e, _ := evt.Data.(*slack.IncomingEventError); e != nil {
				in.log.Warn("socket mode read error", "err", e.ErrorObj)
			}
		case socketmode.EventTypeErrorWriteFailed:
			if e, _ := evt.Data.(*socketmode.ErrorWriteFailed); e != nil {
				in.log.Warn("socket mode acknowledgement not sent; Slack will redeliver", "envelope", e.Response.EnvelopeID, "err", e.Cause)
			}
		default:
			in.log.Debug("socket mode event ignored", "event_type", string(evt.Type))
		}
	}
}

func (in *Input) ack(ctx context.Context, smc *socketmode.Client, envelopeID string) {
	if err := smc.AckCtx(ctx, envelopeID, nil); err != nil {
		in.log.Warn("socket mode acknowledgement failed", "envelope", envelopeID, "err", err)
	}
}

// handleEnvelope normalises an events_api envelope's payload and hands the
// message to Recv.
func (in *Input) handleEnvelope(ctx context.Context, req *socketmode.Request) {
	ev, skip, err := normalizeEvent(req.Payload, in.self)
	switch {
	case err != nil:
		in.log.Warn("event acknowledged and dropped", "envelope", req.EnvelopeID, "err", err)
		return
	case ev == nil:
		in.log.Debug("event ignored", "envelope", req.EnvelopeID, "reason", skip)
		return
	}
	if req.RetryAttempt > 0 {
		ev.Meta[MetaRetry] = strconv.Itoa(req.RetryAttempt)
		in.log.Debug("redelivered event", "event", ev.GetId(), "retry", req.RetryAttempt, "reason", req.RetryReason)
	}
	in.emit(ctx, ev)
}

// handleSlash normalises a slash command and hands it to Recv.
func (in *Input) handleSlash(ctx context.Context, cmd slack.SlashCommand, ref string, retry int) bool {
	ev, skip, err := normalizeSlash(cmd, in.cfg.Command, in.cfg.Ephemeral, in.self)
	switch {
	case err != nil:
		in.log.Warn("slash command dropped", "ref", ref, "err", err)
		return false
	case ev == nil:
		in.log.Debug("slash command ignored", "ref", ref, "reason", skip)
		return true
	}
	if retry > 0 {
		ev.Meta[MetaRetry] = strconv.Itoa(retry)
	}
	return in.emit(ctx, ev)
}

// reconnectGate delays the first apps.connections.open after a socket
// ends, when that socket lived less than stable: slack-go reopens a
// dropped socket at once, and a socket that keeps dropping (a proxy that
// kills websockets, Slack refusing the app) would otherwise be reopened in
// a tight loop. A socket that lived long (Slack refreshes healthy ones
// every few hours) is reopened at once.
type reconnectGate struct {
	stable time.Duration
	log    func(lived, delay time.Duration)

	mu          sync.Mutex
	b           backoff
	connectedAt time.Time
	armed       bool // a socket connected since the last open
}

func (g *reconnectGate) connected() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.connectedAt, g.armed = time.Now(), true
}

// wait blocks before an open if the last socket was short-lived.
func (g *reconnectGate) wait(ctx context.Context) error {
	g.mu.Lock()
	if !g.armed {
		g.mu.Unlock()
		return nil
	}
	g.armed = false
	lived := time.Since(g.connectedAt)
	if lived >= g.stable {
		g.b.reset()
		g.mu.Unlock()
		return nil
	}
	d := g.b.next()
	g.mu.Unlock()
	g.log(lived, d)
	if !sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// gatedClient is the HTTP client of every Slack call; it holds
// apps.connections.open at the reconnect gate.
type gatedClient struct {
	c    *http.Client
	gate *reconnectGate
}

func (g gatedClient) Do(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/apps.connections.open") {
		if err := g.gate.wait(req.Context()); err != nil {
			return nil, err
		}
	}
	return g.c.Do(req)
}

// backoff is an exponential delay: base, 2·base, … up to max.
type backoff struct {
	mu        sync.Mutex
	base, max time.Duration
	n         int
}

func (b *backoff) next() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.base
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	b.n++
	return min(d, b.max)
}

func (b *backoff) attempts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

func (b *backoff) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n = 0
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
