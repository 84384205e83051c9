package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// losing is a JetStream whose first lose asynchronous publications never
// reach NATS: their futures fail, as nats.go's do when the connection drops
// with the message unsent.
type losing struct {
	jetstream.JetStream
	lose atomic.Int32
}

type failed struct{ msg *nats.Msg }

func (f failed) Ok() <-chan *jetstream.PubAck { return make(chan *jetstream.PubAck) }
func (f failed) Err() <-chan error {
	ch := make(chan error, 1)
	ch <- errors.New("nats: connection lost")
	return ch
}
func (f failed) Msg() *nats.Msg { return f.msg }

func (l *losing) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if l.lose.Add(-1) >= 0 {
		return failed{m}, nil
	}
	return l.JetStream.PublishMsgAsync(m, opts...)
}

// records returns the records in the audit stream.
func records(t *testing.T, js jetstream.JetStream) []audit.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, audit.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("record %d: %v", seq, err)
		}
		var r audit.Record
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("record %d: %v", seq, err)
		}
		out = append(out, r)
	}
	return out
}

func recorder(t *testing.T, s *server.Server, wrap func(jetstream.JetStream) jetstream.JetStream) (*audit.Recorder, jetstream.JetStream) {
	t.Helper()
	js := meshtest.JetStream(t, s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := audit.New(ctx, slog.New(slog.DiscardHandler), wrap(js), audit.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return rec, js
}

// A record whose asynchronous publication is lost is published again
// before Stored returns: a router acknowledges a message only after
// Stored, so no acknowledged command lacks its record, and none has two.
func TestStoredRepublishesLostRecords(t *testing.T) {
	s := meshtest.NATS(t)
	l := &losing{}
	l.lose.Store(2)
	rec, js := recorder(t, s, func(js jetstream.JetStream) jetstream.JetStream { l.JetStream = js; return l })
	for _, id := range []string{"e1", "e2", "e3"} {
		rec.Record(audit.Record{RequestID: id, Platform: "slack", User: "U1", Text: "echo " + id, Status: audit.StatusOK})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rec.Stored(ctx, rec.Mark()); err != nil {
		t.Fatal(err)
	}
	got := records(t, js)
	seen := map[string]int{}
	for _, r := range got {
		seen[r.RequestID]++
	}
	for _, id := range []string{"e1", "e2", "e3"} {
		if seen[id] != 1 {
			t.Errorf("record of %s stored %d times, want once (stream: %+v)", id, seen[id], got)
		}
	}
}

// A NATS server that stops after a record is published and before it is
// acknowledged, and comes back, does not lose the record: Stored returns
// once it is stored, and it is stored once.
func TestStoredThroughNATSRestart(t *testing.T) {
	dir := t.TempDir()
	s := meshtest.NATS(t, func(o *server.Options) { o.StoreDir = dir })
	port := s.Addr().(*net.TCPAddr).Port
	rec, js := recorder(t, s, func(js jetstream.JetStream) jetstream.JetStream { return js })
	rec.Record(audit.Record{RequestID: "before", Platform: "irc", Status: audit.StatusOK})
	s.Shutdown()
	s.WaitForShutdown()
	rec.Record(audit.Record{RequestID: "during", Platform: "irc", Status: audit.StatusOK})
	meshtest.NATS(t, func(o *server.Options) { o.StoreDir, o.Port = dir, port })
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	if err := rec.Stored(ctx, rec.Mark()); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range records(t, js) {
		seen[r.RequestID]++
	}
	if seen["before"] != 1 || seen["during"] != 1 {
		t.Errorf("records stored: %v, want before and during once each", seen)
	}
}

// Without a stream, Stored returns at once.
func TestStoredWithoutStream(t *testing.T) {
	rec, err := audit.New(context.Background(), slog.New(slog.DiscardHandler), nil, audit.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rec.Record(audit.Record{RequestID: "x", Platform: "web", Status: audit.StatusOK})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := rec.Stored(ctx, rec.Mark()); err != nil {
		t.Fatal(err)
	}
}

// An audit stream that is gone holds up the first record for the retry
// time, and the records after it not at all while it stays gone: commands
// are not held up once each. Once the stream is back, records are stored
// again.
func TestStoredAuditStreamGone(t *testing.T) {
	old := audit.SetRepublishFor(time.Second)
	t.Cleanup(func() { audit.SetRepublishFor(old) })
	s := meshtest.NATS(t)
	rec, js := recorder(t, s, func(js jetstream.JetStream) jetstream.JetStream { return js })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, audit.Stream); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 20 {
		rec.Record(audit.Record{RequestID: "gone" + strconv.Itoa(i), Platform: "web", Status: audit.StatusOK})
	}
	if err := rec.Stored(ctx, rec.Mark()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("20 records with the audit stream gone held up for %s, want about the retry time (1s)", took)
	}
	// The stream comes back (a router makes it at start).
	if _, err := audit.New(ctx, slog.New(slog.DiscardHandler), js, audit.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	rec.Record(audit.Record{RequestID: "back", Platform: "web", Status: audit.StatusOK})
	if err := rec.Stored(ctx, rec.Mark()); err != nil {
		t.Fatal(err)
	}
	got := records(t, js)
	if len(got) != 1 || got[0].RequestID != "back" {
		t.Errorf("stream after it came back: %+v, want the record made then", got)
	}
}

// BenchmarkRecordLog measures a record's log line (no stream) against the
// same line written with Logger.Info and key-value pairs, the baseline.
func BenchmarkRecordLog(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := audit.Record{RequestID: "Ev0123456789", Platform: "slack", Team: "T1", User: "U1", Channel: "C1", Text: "echo hello", Command: "echo", Service: "go.micro.bot.echo", Node: "echo-1", Status: audit.StatusOK, Duration: 0.42}
	b.Run("record", func(b *testing.B) {
		rec, err := audit.New(context.Background(), log, nil, audit.StreamConfig{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			rec.Record(r)
		}
	})
	b.Run("info-kv", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			log.Info("audit",
				"request_id", r.RequestID, "platform", r.Platform, "team", r.Team, "user", r.User,
				"channel", r.Channel, "text", r.Text, "command", r.Command, "service", r.Service,
				"node", r.Node, "status", r.Status, "rule", r.Rule, "error", r.Error,
				"duration_ms", r.Duration)
		}
	})
}
