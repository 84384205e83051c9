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
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go"
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
	// StatusAnswered marks a message handed out again after its reply
	// was stored: it was not run again. Its first record, if the router
	// that answered it stored one, says how it went.
	StatusAnswered = "answered"
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
//
// Records reach the audit stream asynchronously (a JetStream PublishAsync
// per record, with no round trip on the command's path), in the order they
// are made. A router acknowledges a durable inbound message only once the
// records made so far are stored (Mark, then Stored): a record whose
// publication failed or went unconfirmed is published again, with the
// same message id (the stream drops a repeat), before Stored returns. So
// no acknowledged command lacks its record, whether the router dies
// (its unacknowledged messages go to another router, which records them)
// or NATS loses a publication (it is sent again).
type Recorder struct {
	log *slog.Logger
	js  jetstream.JetStream // nil: log only

	// idPrefix and seq make each record's message id.
	idPrefix string
	seq      atomic.Uint64
	// stored is the seq of the first record not known stored: every
	// record before it is stored (or was given up and logged).
	stored atomic.Uint64

	mu        sync.Mutex
	queue     []*pending    // published, not yet known stored, in order
	resolving bool          // a goroutine works through queue
	changed   chan struct{} // closed (and replaced) when stored moves

	// failing is set (by the resolver only) when a record could not be
	// stored for republishFor, and cleared when one is stored: meanwhile
	// records that fail are logged as not stored at once, so that an
	// audit stream that is gone holds commands up once, not once each.
	failing bool
}

// pending is a record published and not yet confirmed.
type pending struct {
	seq uint64
	msg *nats.Msg
	fut jetstream.PubAckFuture
}

// ackWait bounds the wait for an asynchronous publication's
// acknowledgement before it is published again (synchronously, with
// durable.Publish's retries, for up to republishFor).
const ackWait = 5 * time.Second

var republishFor = 30 * time.Second

// StreamConfig tunes the audit stream.
type StreamConfig struct {
	MaxAge   time.Duration
	Replicas int
}

// New returns a recorder that logs to log and, if js is not nil, publishes
// to the audit stream, which it creates or updates.
func New(ctx context.Context, log *slog.Logger, js jetstream.JetStream, cfg StreamConfig) (*Recorder, error) {
	r := &Recorder{log: log, idPrefix: "audit-" + nats.NewInbox()[len(nats.InboxPrefix):] + "-", changed: make(chan struct{})}
	r.seq.Store(1)
	r.stored.Store(1)
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
		return r, err
	}
	r.js = js
	return r, nil
}

// Record writes rec: to the log at once, and to the audit stream
// asynchronously (see Stored). A slow or absent stream never holds up a
// reply.
func (r *Recorder) Record(rec Record) {
	rec.Type = RecordType
	// LogAttrs boxes no value into an any: 1 allocation a line instead of
	// 12 (BenchmarkRecordLog); the line itself was half of Record's CPU
	// in the router's profile.
	r.log.LogAttrs(context.Background(), slog.LevelInfo, "audit",
		slog.String("request_id", rec.RequestID), slog.String("platform", rec.Platform), slog.String("team", rec.Team), slog.String("user", rec.User),
		slog.String("channel", rec.Channel), slog.String("text", rec.Text), slog.String("command", rec.Command), slog.String("service", rec.Service),
		slog.String("node", rec.Node), slog.String("status", rec.Status), slog.String("rule", rec.Rule), slog.String("error", rec.Error),
		slog.Float64("duration_ms", rec.Duration))
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
	// The lock keeps the queue in the order of publication, which the
	// connection keeps too.
	r.mu.Lock()
	defer r.mu.Unlock()
	seq := r.seq.Load()
	msg := &nats.Msg{Subject: SubjectPrefix + platform, Data: b, Header: nats.Header{jetstream.MsgIDHeader: []string{r.idPrefix + strconv.FormatUint(seq, 36)}}}
	fut, err := r.js.PublishMsgAsync(msg)
	if err != nil {
		// Not sent (too many pending, a closed connection): the resolver
		// publishes it again.
		r.log.Warn("audit: publish", "err", err)
	}
	r.seq.Store(seq + 1)
	r.queue = append(r.queue, &pending{seq: seq, msg: msg, fut: fut})
	if !r.resolving {
		r.resolving = true
		go r.resolve()
	}
}

// Mark returns the mark of the records made so far, for Stored.
func (r *Recorder) Mark() uint64 { return r.seq.Load() }

// Stored waits until every record made before mark (Mark) is stored in the
// audit stream, or given up after republishFor and logged, or ctx ends
// (then it returns an error). Without a stream it returns at once.
func (r *Recorder) Stored(ctx context.Context, mark uint64) error {
	for {
		if r.js == nil || r.stored.Load() >= mark {
			return nil
		}
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if r.stored.Load() >= mark {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("audit: records still unconfirmed: %w", context.Cause(ctx))
		}
	}
}

// resolve works through the queue in order until it is empty: it waits for
// each publication's acknowledgement, publishes again those that failed,
// and moves stored on.
func (r *Recorder) resolve() {
	timer := time.NewTimer(ackWait)
	defer timer.Stop()
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.resolving = false
			r.mu.Unlock()
			return
		}
		p := r.queue[0]
		r.mu.Unlock()

		ok := false
		if p.fut != nil {
			// The resolver is the only reader of a future's channels.
			timer.Reset(ackWait)
			select {
			case <-p.fut.Ok():
				ok = true
			case <-p.fut.Err():
			case <-timer.C:
			}
			timer.Stop()
		}
		if ok {
			r.failing = false
		} else {
			r.republish(p)
		}

		r.mu.Lock()
		r.queue[0] = nil
		r.queue = r.queue[1:]
		r.stored.Store(p.seq + 1)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}
}

// republish stores a record whose asynchronous publication failed or went
// unconfirmed, with its message id, so that a copy stored meanwhile is not
// stored twice.
func (r *Recorder) republish(p *pending) {
	if r.failing {
		r.log.Error("audit: record not stored in the audit stream; the log has it", "subject", p.msg.Subject)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), republishFor)
	defer cancel()
	if _, err := durable.Publish(ctx, r.js, p.msg); err != nil {
		r.failing = true
		r.log.Error("audit: record not stored in the audit stream; the log has it", "subject", p.msg.Subject, "err", err)
		return
	}
	r.failing = false
}

// Flush waits until the records made so far are stored, or ctx ends.
func (r *Recorder) Flush(ctx context.Context) error {
	if err := r.Stored(ctx, r.Mark()); err != nil {
		return errors.New("audit: records still unconfirmed at shutdown")
	}
	return nil
}
