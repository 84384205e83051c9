// Package audit records every command the router handles: who ran what,
// where, on which service node, with what outcome and how long it took. A
// record goes to the structured log and, when the NATS server has
// JetStream, to the audit stream (subject bot.v1.audit.<platform>), where
// tools can read it back.
//
// A record's Text never holds a secret argument: the router replaces the
// words a command marks secret (CommandSpec.secret_args) with Redacted
// before the record is made (see Redact), and the log line is made from
// the record.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/botmesh/botmesh/sdk/durable"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream and subjects of audit records.
const (
	Stream        = "BOTMESH_AUDIT"
	SubjectPrefix = "bot.v1.audit."
)

// Statuses of a record.
const (
	StatusOK        = "ok"        // answered
	StatusError     = "error"     // the command or its service failed
	StatusTimeout   = "timeout"   // no answer in time
	StatusUnknown   = "unknown"   // no such command
	StatusDenied    = "denied"    // the policy said no
	StatusConfirm   = "confirm"   // asked for confirmation
	StatusCancelled = "cancelled" // the user said no
	StatusLimited   = "limited"   // over a rate limit
	StatusRejected  = "rejected"  // empty or too long
)

// Record is one audit record. The JSON form carries a type string, as nats
// micro's control payloads do.
type Record struct {
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Platform  string    `json:"platform"`
	Team      string    `json:"team,omitempty"`
	User      string    `json:"user"`
	Channel   string    `json:"channel"`
	// Text is the message, with its secret arguments replaced by Redacted.
	Text     string  `json:"text"`
	Command  string  `json:"command,omitempty"`
	Service  string  `json:"service,omitempty"`
	Node     string  `json:"node,omitempty"`
	Status   string  `json:"status"`
	Rule     string  `json:"rule,omitempty"`
	Error    string  `json:"error,omitempty"`
	Duration float64 `json:"duration_ms"`
	Router   string  `json:"router"`
}

// RecordType versions the JSON form.
const RecordType = "io.botmesh.v1.audit_record"

// Redacted stands for a secret argument in records and logs.
const Redacted = "[redacted]"

// Redact returns text with the words at positions (0 is the first word,
// the command word) replaced by Redacted, and with every word from
// position from on replaced when from is 0 or more (for a secret whose
// place is not known: everything after the command's words). Words are
// split at white space as the router's parser splits them; the spacing
// between words is kept. Positions past the last word mark nothing.
func Redact(text string, positions []uint32, from int) string {
	if len(positions) == 0 && from < 0 {
		return text
	}
	secret := func(i int) bool {
		if from >= 0 && i >= from {
			return true
		}
		for _, p := range positions {
			if uint64(p) == uint64(i) {
				return true
			}
		}
		return false
	}
	var b strings.Builder
	b.Grow(len(text))
	i, word := 0, -1
	for i < len(text) {
		// Copy the space before the next word.
		j := strings.IndexFunc(text[i:], func(r rune) bool { return !unicode.IsSpace(r) })
		if j < 0 {
			b.WriteString(text[i:])
			break
		}
		b.WriteString(text[i : i+j])
		i += j
		word++
		end := strings.IndexFunc(text[i:], unicode.IsSpace)
		if end < 0 {
			end = len(text) - i
		}
		if secret(word) {
			b.WriteString(Redacted)
		} else {
			b.WriteString(text[i : i+end])
		}
		i += end
	}
	return b.String()
}

// Recorder writes records.
type Recorder struct {
	log *slog.Logger
	js  jetstream.JetStream // nil: log only
}

// StreamConfig tunes the audit stream.
type StreamConfig struct {
	MaxAge   time.Duration
	Replicas int
}

// New returns a recorder that logs to log and, if js is not nil, publishes
// to the audit stream, which it creates or updates.
func New(ctx context.Context, log *slog.Logger, js jetstream.JetStream, cfg StreamConfig) (*Recorder, error) {
	r := &Recorder{log: log}
	if js == nil {
		return r, nil
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 30 * 24 * time.Hour
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	_, err := durable.EnsureStreamConfig(ctx, js, jetstream.StreamConfig{
		Name:        Stream,
		Description: "botmesh audit records",
		Subjects:    []string{SubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.MaxAge,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return r, fmt.Errorf("audit: stream %s: %w", Stream, err)
	}
	r.js = js
	return r, nil
}

// Record writes rec. Publishing is asynchronous: a slow or absent stream
// never holds up a reply; failures are logged.
func (r *Recorder) Record(rec Record) {
	rec.Type = RecordType
	r.log.Info("audit",
		"request_id", rec.RequestID, "platform", rec.Platform, "team", rec.Team, "user", rec.User,
		"channel", rec.Channel, "text", rec.Text, "command", rec.Command, "service", rec.Service,
		"node", rec.Node, "status", rec.Status, "rule", rec.Rule, "error", rec.Error,
		"duration_ms", rec.Duration)
	if r.js == nil {
		return
	}
	b, err := json.Marshal(rec)
	if err != nil {
		r.log.Error("audit: encode", "err", err)
		return
	}
	platform := rec.Platform
	if platform == "" {
		platform = "unknown"
	}
	if _, err := r.js.PublishAsync(SubjectPrefix+platform, b); err != nil {
		r.log.Error("audit: publish", "err", err)
	}
}

// Flush waits until the records published so far are stored, or ctx ends.
func (r *Recorder) Flush(ctx context.Context) error {
	if r.js == nil {
		return nil
	}
	select {
	case <-r.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return errors.New("audit: records still unconfirmed at shutdown")
	}
}
