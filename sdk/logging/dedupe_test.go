package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the handler's timer goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

func count(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// waitLines waits (at most 5s) until cond holds for the lines written.
func waitLines(t *testing.T, out *syncBuffer, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := out.lines()
		if cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s; lines:\n%s", strings.Join(l, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A storm of one warning is written once, then as one count line per
// window; records that differ in a key attribute, in logger attributes or
// in message, and records below the level, are not merged.
func TestDedupe(t *testing.T) {
	out := &syncBuffer{}
	const window = 400 * time.Millisecond
	log := slog.New(Dedupe(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}),
		&DedupeOptions{Window: window, Keys: []string{"service"}}))
	dir := log.With("part", "directory")

	start := time.Now()
	for i := range 783 {
		dir.Warn("node unreachable; skipping it", "service", "go.micro.bot.echo", "node", i)
	}
	dir.Warn("node unreachable; skipping it", "service", "go.micro.bot.query", "node", "q1")
	log.Warn("node unreachable; skipping it", "service", "go.micro.bot.echo", "node", "other-logger")
	for range 3 {
		dir.Debug("registry event", "service", "go.micro.bot.echo")
	}
	if time.Since(start) > window/2 {
		t.Skipf("logging took %s, too close to the %s window for this test", time.Since(start), window)
	}
	lines := out.lines()
	if got := count(lines, "node unreachable; skipping it"); got != 3 {
		t.Errorf("%d unreachable lines at once, want 3 (echo, query, other logger):\n%s", got, strings.Join(lines, "\n"))
	}
	if got := count(lines, "registry event"); got != 3 {
		t.Errorf("%d debug lines, want all 3", got)
	}

	// At the end of the window: one count line, with the last repeat's
	// attributes.
	lines = waitLines(t, out, func(l []string) bool { return count(l, "repeated") > 0 })
	if got := count(lines, "node unreachable; skipping it (repeated 782 times)"); got != 1 {
		t.Errorf("want one count line of 782 repeats:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[len(lines)-1], "node=782") || !strings.Contains(lines[len(lines)-1], "part=directory") {
		t.Errorf("count line %q lacks the last record's attributes", lines[len(lines)-1])
	}

	// The storm goes on: still one line per window.
	dir.Warn("node unreachable; skipping it", "service", "go.micro.bot.echo", "node", "again")
	dir.Warn("node unreachable; skipping it", "service", "go.micro.bot.echo", "node", "again")
	lines = waitLines(t, out, func(l []string) bool { return count(l, "repeated 2 times") > 0 })
	if got := count(lines, "node unreachable"); got != 5 {
		t.Errorf("%d unreachable lines, want 5:\n%s", got, strings.Join(lines, "\n"))
	}

	// A quiet window ends the burst: the next one is written at once.
	time.Sleep(3 * window)
	dir.Warn("node unreachable; skipping it", "service", "go.micro.bot.echo", "node", "later")
	if got := count(out.lines(), "node=later"); got != 1 {
		t.Errorf("a warning after a quiet window was not written at once")
	}
}

// Config.New counts repeats too.
func TestConfigNewDedupes(t *testing.T) {
	out := &syncBuffer{}
	log, err := Config{Level: "info", Format: "json"}.New(out)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		log.Warn("registry resync failed", "err", "timeout")
	}
	log.Info("router ready")
	log.Info("router ready")
	if got := count(out.lines(), "registry resync failed"); got != 1 {
		t.Errorf("%d lines for 10 identical warnings, want 1 (the count follows later)", got)
	}
	if got := count(out.lines(), "router ready"); got != 2 {
		t.Errorf("info lines were merged")
	}
}
