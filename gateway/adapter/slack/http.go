package slackgw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/slack-go/slack"
)

// Paths the http mode serves; both take events and slash commands, so the
// app's Event Subscriptions and slash command can share one Request URL.
const (
	EventsPath   = "/slack/events"
	CommandsPath = "/slack/commands"
)

// maxBody bounds a request body; Slack's events and commands are a few KB.
const maxBody = 1 << 20

// queueWait is how long a request waits for room in the queue to Recv
// before it is answered 503 (Slack retries later). Slack wants an answer
// within 3 s.
const queueWait = 2 * time.Second

// startHTTP starts the Events API listener.
func (in *Input) startHTTP() error {
	ln, err := net.Listen("tcp", in.cfg.Listen)
	if err != nil {
		in.setState(false, 0, err)
		return fmt.Errorf("slack: listen on %s: %w", in.cfg.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle(EventsPath, in)
	mux.Handle(CommandsPath, in)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		ErrorLog:          log.New(slogWriter{in.log}, "", 0),
	}
	in.mu.Lock()
	in.ln, in.srv = ln, srv
	in.mu.Unlock()
	in.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			in.setState(false, 0, fmt.Errorf("slack: serve: %w", err))
			in.log.Error("events API listener failed", "err", err)
		}
	})
	in.setState(true, 0, nil)
	in.log.Info("events API listening", "addr", ln.Addr().String(), "events_path", EventsPath, "commands_path", CommandsPath)
	return nil
}

// Addr returns the http mode's listening address, nil before Start or in
// Socket Mode.
func (in *Input) Addr() net.Addr {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ln == nil {
		return nil
	}
	return in.ln.Addr()
}

// ServeHTTP takes Slack's Events API deliveries and slash commands: it
// checks the request signature (401 if forged, unsigned or older than 5
// minutes), answers url_verification, and queues messages for Recv before
// it answers 200.
func (in *Input) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			in.log.Warn("request refused: body too large", "remote", r.RemoteAddr, "limit", maxBody)
			http.Error(w, fmt.Sprintf("body over %d bytes", maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body failed", http.StatusBadRequest)
		return
	}
	if err := in.verify(r.Header, body); err != nil {
		in.log.Warn("request refused: not signed by Slack", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return
	}
	retry, _ := strconv.Atoi(r.Header.Get("X-Slack-Retry-Num"))
	ctx, cancel := context.WithTimeout(r.Context(), queueWait)
	defer cancel()
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" {
		in.serveCommand(ctx, w, r, body, retry)
		return
	}
	in.serveEvent(ctx, w, body, retry, r.Header.Get("X-Slack-Retry-Reason"))
}

// verify checks Slack's v0 signature: HMAC-SHA256 of "v0:timestamp:body"
// with the signing secret, compared in constant time, timestamp within 5
// minutes.
func (in *Input) verify(h http.Header, body []byte) error {
	sv, err := slack.NewSecretsVerifier(h, in.cfg.SigningSecret.Reveal())
	if err != nil {
		return err
	}
	if _, err := sv.Write(body); err != nil {
		return err
	}
	return sv.Ensure()
}

func (in *Input) serveEvent(ctx context.Context, w http.ResponseWriter, body []byte, retry int, retryReason string) {
	var cb callback
	if err := json.Unmarshal(body, &cb); err != nil {
		in.log.Warn("malformed event refused", "bytes", len(body), "err", err)
		http.Error(w, "malformed event JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	switch cb.Type {
	case "url_verification":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, cb.Challenge)
		in.log.Info("events API URL verified")
		return
	case "app_rate_limited":
		in.log.Warn("Slack is dropping events: the app exceeded 30,000 events per hour")
		return
	}
	ev, skip, err := normalizeEvent(body, in.self)
	switch {
	case err != nil:
		in.log.Warn("malformed event refused", "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case ev == nil:
		in.log.Debug("event ignored", "event", cb.EventID, "reason", skip)
		return
	}
	if retry > 0 {
		// A redelivery: the gateway drops it if the first delivery was
		// taken (same event id), and answers it if that one never
		// arrived.
		ev.Meta[MetaRetry] = strconv.Itoa(retry)
		in.log.Debug("redelivered event", "event", ev.GetId(), "retry", retry, "reason", retryReason)
	}
	if !in.emit(ctx, ev) {
		in.log.Warn("event not queued in time; Slack will redeliver", "event", ev.GetId())
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}
}

func (in *Input) serveCommand(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte, retry int) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.PostForm, r.Form = nil, nil
	cmd, err := slack.SlashCommandParse(r)
	if err != nil {
		http.Error(w, "malformed slash command: "+err.Error(), http.StatusBadRequest)
		return
	}
	if cmd.Command == "" && r.PostForm.Get("payload") != "" {
		in.log.Debug("interactive payload ignored")
		return
	}
	ok := in.handleSlash(ctx, cmd, cmd.TriggerID, retry)
	if !ok {
		if ctx.Err() != nil {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		http.Error(w, "malformed slash command", http.StatusBadRequest)
	}
}
