package logging

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// DedupeOptions tunes Dedupe. The zero value means a 5s window, records at
// Warn and above, and no attributes in the key.
type DedupeOptions struct {
	// Window is how long identical records after the first are counted
	// instead of written (default 5s).
	Window time.Duration
	// Level is the lowest level deduplicated (default slog.LevelWarn):
	// records below it, one per message at debug level, all pass.
	Level slog.Leveler
	// Keys are the attributes whose values tell records apart: with
	// "service", "node unreachable" for echo and for query are counted
	// separately. Other attributes may differ between identical records;
	// the count line carries the last one's.
	Keys []string
}

// DefaultDedupeKeys are the attributes Config.New tells records apart by.
var DefaultDedupeKeys = []string{"service"}

// Dedupe returns a handler that writes to h the first record of each kind
// (same level, message, logger attributes and Keys attributes) and, while
// more of that kind keep coming, one line per window with their count:
// "node unreachable; skipping it (repeated 782 times)". A burst of one
// failure seen by many requests thus costs a line or two, not one each.
// The count line is written when its window ends; a window with no repeats
// ends the burst, and the next record of that kind is written at once.
func Dedupe(h slog.Handler, o *DedupeOptions) slog.Handler {
	st := &dedupeState{window: 5 * time.Second, level: slog.LevelWarn, keys: map[string]bool{}, bursts: map[string]*burst{}}
	if o != nil {
		if o.Window > 0 {
			st.window = o.Window
		}
		if o.Level != nil {
			st.level = o.Level
		}
		for _, k := range o.Keys {
			st.keys[k] = true
		}
	}
	return &dedupe{h: h, st: st}
}

type dedupe struct {
	h     slog.Handler
	scope string // groups and attributes added by WithGroup and WithAttrs
	st    *dedupeState
}

// dedupeState is shared by a Dedupe handler and those derived from it.
type dedupeState struct {
	window time.Duration
	level  slog.Leveler
	keys   map[string]bool

	mu     sync.Mutex
	bursts map[string]*burst // by record kind
}

// burst is a kind of record that was written less than a window ago.
type burst struct {
	h     slog.Handler // the (derived) handler that wrote the first
	last  slog.Record  // the last repeat
	count int          // repeats in this window
}

func (d *dedupe) Enabled(ctx context.Context, l slog.Level) bool { return d.h.Enabled(ctx, l) }

func (d *dedupe) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(d.scope)
	for _, a := range as {
		fmt.Fprintf(&b, "\x00%s=%s", a.Key, a.Value)
	}
	return &dedupe{h: d.h.WithAttrs(as), scope: b.String(), st: d.st}
}

func (d *dedupe) WithGroup(name string) slog.Handler {
	return &dedupe{h: d.h.WithGroup(name), scope: d.scope + "\x00[" + name, st: d.st}
}

func (d *dedupe) Handle(ctx context.Context, r slog.Record) error {
	st := d.st
	if r.Level < st.level.Level() {
		return d.h.Handle(ctx, r)
	}
	var k strings.Builder
	fmt.Fprintf(&k, "%s\x00%d\x00%s", d.scope, r.Level, r.Message)
	if len(st.keys) > 0 {
		r.Attrs(func(a slog.Attr) bool {
			if st.keys[a.Key] {
				fmt.Fprintf(&k, "\x00%s=%s", a.Key, a.Value)
			}
			return true
		})
	}
	key := k.String()
	st.mu.Lock()
	if b := st.bursts[key]; b != nil {
		b.count++
		b.last = r.Clone()
		st.mu.Unlock()
		return nil
	}
	st.bursts[key] = &burst{h: d.h}
	st.mu.Unlock()
	time.AfterFunc(st.window, func() { st.tick(key) })
	return d.h.Handle(ctx, r)
}

// tick ends a window of the burst key: it writes the count of repeats and
// starts another window, or ends the burst if there were none.
func (st *dedupeState) tick(key string) {
	st.mu.Lock()
	b := st.bursts[key]
	if b == nil || b.count == 0 {
		delete(st.bursts, key)
		st.mu.Unlock()
		return
	}
	last, n := b.last, b.count
	b.count = 0
	st.mu.Unlock()
	time.AfterFunc(st.window, func() { st.tick(key) })

	r := slog.NewRecord(time.Now(), last.Level, fmt.Sprintf("%s (repeated %d times)", last.Message, n), last.PC)
	last.Attrs(func(a slog.Attr) bool {
		r.AddAttrs(a)
		return true
	})
	_ = b.h.Handle(context.Background(), r)
}
