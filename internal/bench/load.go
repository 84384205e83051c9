package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nuid"
)

// Platform is the platform name of the bench's messages (its input's name).
const Platform = "bench"

// seqKey is the Meta key that carries a message's number; replies carry the
// message's Meta back.
const seqKey = "bench.seq"

// load is the input of the bench's gateway: it says text up to count times
// (or until the deadline, or until stop accepts a reply), with at most
// concurrency messages awaiting their reply, and times each from the moment
// the gateway takes it (Recv) to the moment the gateway posts its final
// reply (Send).
type load struct {
	text        string
	want        string // expected reply text ("" any non-error reply)
	count       int
	deadline    time.Time
	users       int
	stopOn      func(*chatopsv1.Event) bool // ends the run after this reply (nil: never)
	rec         *recorder
	base        time.Time
	slots       chan struct{}
	sent        int
	starts      []atomic.Int64 // ns after base, by message number
	stopped     chan struct{}
	stopOnce    sync.Once
	lastReplyMu sync.Mutex
	lastReply   string
}

var _ adapter.Input = (*load)(nil)

func newLoad(text, want string, count, concurrency int, within time.Duration, rec *recorder) *load {
	l := &load{
		text: text, want: want, count: count, users: 64,
		deadline: time.Now().Add(within),
		rec:      rec,
		base:     time.Now(),
		slots:    make(chan struct{}, concurrency),
		starts:   make([]atomic.Int64, count),
		stopped:  make(chan struct{}),
	}
	for range concurrency {
		l.slots <- struct{}{}
	}
	return l
}

func (l *load) String() string { return Platform }

// Run implements adapter.Input: it sends the messages (Recv) until they
// are all sent, the time is up, or ctx ends.
func (l *load) Run(ctx context.Context, emit adapter.Emit) error {
	return adapter.Drive(ctx, emit, l.Recv, func(context.Context) error { l.stop(); return nil })
}

func (l *load) stop() { l.stopOnce.Do(func() { close(l.stopped) }) }

// Recv returns the next message, once a slot is free.
func (l *load) Recv(ctx context.Context) (*chatopsv1.Event, error) {
	select {
	case <-l.slots:
	case <-l.stopped:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-l.stopped:
		return nil, io.EOF
	default:
	}
	if l.sent >= l.count || time.Now().After(l.deadline) {
		return nil, io.EOF
	}
	n := l.sent
	l.sent++
	user := "u" + strconv.Itoa(n%l.users)
	ev := &chatopsv1.Event{
		Id:   nuid.Next(),
		From: &chatopsv1.Peer{Id: user, Name: user},
		To:   "bench-" + strconv.Itoa(n%l.users),
		Data: []byte(l.text),
		Meta: map[string]string{seqKey: strconv.Itoa(n)},
	}
	l.starts[n].Store(int64(time.Since(l.base)))
	return ev, nil
}

// Send implements adapter.Conn: a final reply ends its message's timing
// and frees its slot.
func (l *load) Send(_ context.Context, ev *chatopsv1.Event) error {
	if ev.GetType() == chatopsv1.EventType_EVENT_TYPE_PROGRESS {
		return nil
	}
	now := time.Since(l.base)
	n, err := strconv.Atoi(ev.GetMeta()[seqKey])
	if err != nil || n < 0 || n >= len(l.starts) {
		l.rec.fail(0, fmt.Sprintf("reply to no message of the bench: %q", ev.GetData()))
		return nil
	}
	d := now - time.Duration(l.starts[n].Load())
	text := string(ev.GetData())
	switch {
	case ev.GetType() == chatopsv1.EventType_EVENT_TYPE_ERROR:
		l.rec.fail(d, "error: "+text)
	case l.want != "" && text != l.want:
		l.rec.fail(d, "reply: "+text)
	default:
		l.rec.ok(d)
	}
	l.lastReplyMu.Lock()
	l.lastReply = text
	l.lastReplyMu.Unlock()
	if l.stopOn != nil && l.stopOn(ev) {
		l.stop()
	}
	l.slots <- struct{}{}
	return nil
}

func (l *load) last() string {
	l.lastReplyMu.Lock()
	defer l.lastReplyMu.Unlock()
	return l.lastReply
}

// expected returns the reply the mesh gives to text, when it is known:
// the arguments of echo, pong for ping.
func expected(text string) string {
	f := strings.Fields(text)
	switch {
	case len(f) == 0:
		return ""
	case strings.EqualFold(f[0], "echo") && len(f) > 1:
		return strings.Join(f[1:], " ")
	case strings.EqualFold(text, "ping"):
		return "pong"
	}
	return ""
}
