package natstransport

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/transport"
)

// ReplayMetadata is the node metadata key by which a server says that a
// request sent again (the same reply subject, marked with resendHeader) is
// answered once: with the first response if it was sent, or not at all
// while the first is still being served. A client resends a request to such
// a node when NATS reconnects while it waits: a NATS server that died may
// have dropped the request or its response, and the command must neither be
// reported as failed nor run twice.
const ReplayMetadata = "botmesh-replay"

// resendHeader marks a request sent again.
const resendHeader = "Botmesh-Resend"

// A client sends a request again once it has waited resendAfter, or at
// once when its NATS connection reconnects, then every resendEvery until
// the response comes or its deadline passes (the server may not have
// subscribed again yet). A server still serving the request ignores a
// resend.
const (
	resendAfter = 3 * time.Second
	resendEvery = 2 * time.Second
)

// Sizes of the server's memory of responses.
const (
	// replayRing is how many recent responses are kept in any case.
	replayRing = 4096
	// pinBefore: at a disconnect, the responses sent this long before it
	// are kept (until pinFor after the reconnect): the NATS server may
	// have dropped them.
	pinBefore = 5 * time.Second
	pinFor    = 2 * time.Minute
)

// replays remembers, per transport, which requests are being served and
// the last responses, so that a resent request is answered once.
type replays struct {
	mu       sync.Mutex
	inflight map[string]struct{} // reply subjects being served
	ring     [replayRing]sentResponse
	next     int
	pinned   map[string][]byte // responses kept across a disconnect
	down     bool              // NATS is disconnected
	until    time.Time         // pinned is kept until then (when up)
}

type sentResponse struct {
	reply string
	data  []byte
	at    time.Time
}

// begin records that the request with reply subject reply arrived. It
// returns true for a request to serve; for a resent one it returns false,
// with the response to send again (nil while the first is still served, or
// if it is not known: then it is served as new).
func (r *replays) begin(reply string, resent bool) (serve bool, again []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight == nil {
		r.inflight = map[string]struct{}{}
	}
	if resent {
		if _, ok := r.inflight[reply]; ok {
			return false, nil
		}
		if data, ok := r.pinned[reply]; ok {
			return false, data
		}
		for i := range r.ring {
			if r.ring[i].reply == reply {
				return false, r.ring[i].data
			}
		}
	}
	r.inflight[reply] = struct{}{}
	return true, nil
}

// done records the response sent to reply (nil: none will be sent).
func (r *replays) done(reply string, data []byte) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inflight, reply)
	if data == nil {
		return
	}
	slot := &r.ring[r.next]
	r.next = (r.next + 1) % replayRing
	slot.reply, slot.at = reply, now
	slot.data = append(slot.data[:0], data...)
	switch {
	case r.down:
		// Buffered by nats.go until it reconnects, or lost with it.
		r.pin(reply, data)
	case r.pinned != nil && now.After(r.until):
		r.pinned = nil
	}
}

func (r *replays) pin(reply string, data []byte) {
	if r.pinned == nil {
		r.pinned = map[string][]byte{}
	}
	r.pinned[reply] = append([]byte(nil), data...)
}

// disconnected keeps the responses of the last pinBefore.
func (r *replays) disconnected() {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
	for i := range r.ring {
		if s := &r.ring[i]; s.reply != "" && now.Sub(s.at) < pinBefore {
			r.pin(s.reply, s.data)
		}
	}
}

func (r *replays) reconnected() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = false
	r.until = time.Now().Add(pinFor)
}

// watchConnection follows nc's status: it keeps responses across a
// disconnect, and tells waiting calls of a reconnect.
func (t *Transport) watchConnection() {
	if t.nc.IsClosed() {
		return
	}
	ch := t.nc.StatusChanged(nats.RECONNECTING, nats.DISCONNECTED, nats.CONNECTED, nats.CLOSED)
	go func() {
		for st := range ch {
			switch st {
			case nats.RECONNECTING, nats.DISCONNECTED:
				t.replays.disconnected()
			case nats.CONNECTED:
				t.replays.reconnected()
				close(*t.reconnect.Swap(newSignal()))
			case nats.CLOSED:
				return
			}
		}
	}()
}

func newSignal() *chan struct{} {
	c := make(chan struct{})
	return &c
}

// reconnected returns a channel closed at the next reconnect.
func (t *Transport) reconnected() <-chan struct{} { return *t.reconnect.Load() }

// respond sends the response to a request (not a stream's message) and
// remembers it for a resend.
func (t *Transport) respond(reply string, m *transport.Message) error {
	bp := bufs.Get().(*[]byte)
	b := appendFrame((*bp)[:0], m)
	err := t.nc.PublishMsg(&nats.Msg{Subject: reply, Data: b})
	t.replays.done(reply, b)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		bufs.Put(bp)
	}
	return err
}
