// Package adaptertest is the test kit of the gateway's inputs: an
// in-memory Input for testing the gateway and whatever sits behind it
// (tests say things as a chat user and read the replies the gateway
// posts), and the conformance suite every input runs (Run). The
// chat servers those tests run against live beside it, apart from the
// gateway's own code: fakeslack (Slack's wire protocol), prosodytest (a real
// Prosody) and ircdtest (a real ngircd).
package adaptertest

import (
	"context"
	"flag"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nuid"
)

// Input is an in-memory adapter.Input and adapter.Conn.
type Input struct {
	name    string
	shared  bool
	msgs    chan *chatopsv1.Event
	replies chan *chatopsv1.Event
	end     chan struct{}
	endOnce sync.Once
	stopped chan struct{}
	stop    sync.Once
}

var (
	_ adapter.Input   = (*Input)(nil)
	_ adapter.Starter = (*Input)(nil)
)

// New returns an input called name (also its platform).
func New(name string) *Input {
	return &Input{
		name:    name,
		msgs:    make(chan *chatopsv1.Event, 1024),
		replies: make(chan *chatopsv1.Event, 1024),
		end:     make(chan struct{}),
		stopped: make(chan struct{}),
	}
}

// NewShared returns an input called name whose conversations any gateway
// replica can post to (adapter.Shared), as Slack's.
func NewShared(name string) *Input {
	i := New(name)
	i.shared = true
	return i
}

// SharedConversations reports whether the input was made by NewShared.
func (i *Input) SharedConversations() bool { return i.shared }

// Say queues text as a message from user U1 in conversation C1 and returns
// its event id.
func (i *Input) Say(text string) string {
	ev := &chatopsv1.Event{
		Id:   nuid.Next(),
		From: &chatopsv1.Peer{Id: "U1", Name: "ada", Team: "T1"},
		To:   "C1",
		Data: []byte(text),
	}
	i.SayEvent(ev)
	return ev.Id
}

// SayEvent queues ev as a message.
func (i *Input) SayEvent(ev *chatopsv1.Event) { i.msgs <- ev }

// End makes Recv return io.EOF once the queued messages are taken.
func (i *Input) End() { i.endOnce.Do(func() { close(i.end) }) }

// Reply returns the next reply the gateway posted, failing t after within.
func (i *Input) Reply(t testing.TB, within time.Duration) *chatopsv1.Event {
	t.Helper()
	select {
	case ev := <-i.replies:
		return ev
	case <-time.After(within):
		t.Fatalf("%s: no reply posted within %s", i.name, within)
		return nil
	}
}

// Replies returns the replies the gateway posted, as they come.
func (i *Input) Replies() <-chan *chatopsv1.Event { return i.replies }

// NoReply fails t if a reply is posted within d.
func (i *Input) NoReply(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case ev := <-i.replies:
		t.Fatalf("%s: unexpected reply %s %q", i.name, ev.GetType(), ev.GetData())
	case <-time.After(d):
	}
}

func (i *Input) String() string              { return i.name }
func (i *Input) Flags(*flag.FlagSet)         {}
func (i *Input) Init(adapter.Env) error      { return nil }
func (i *Input) Start(context.Context) error { return nil }

// Run implements adapter.Input: it hands each message Recv returns to
// emit until ctx ends, then stops (Stop, with adapter.StopGrace).
func (i *Input) Run(ctx context.Context, emit adapter.Emit) error {
	return adapter.Drive(ctx, emit, i.Recv, i.Stop)
}

func (i *Input) Stop(context.Context) error {
	i.stop.Do(func() { close(i.stopped) })
	return nil
}

func (i *Input) Recv(ctx context.Context) (*chatopsv1.Event, error) {
	select {
	case ev := <-i.msgs:
		return ev, nil
	default:
	}
	select {
	case ev := <-i.msgs:
		return ev, nil
	case <-i.end:
		return nil, io.EOF
	case <-i.stopped:
		return nil, adapter.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (i *Input) Send(_ context.Context, ev *chatopsv1.Event) error {
	i.replies <- ev
	return nil
}
