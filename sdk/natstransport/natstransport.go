// Package natstransport is a go-micro transport over NATS that speaks the
// wire protocol of go-micro's NATS transport plugin
// (github.com/go-micro/plugins/v4/transport/nats), so that services and
// clients on either call each other, at a fraction of its cost:
//
//   - One NATS connection, shared with the rest of the process, instead of
//     a new connection for every pooled client connection (the plugin's
//     Dial connects anew), so that the writes of concurrent calls share
//     syscalls.
//   - Replies to every client socket arrive on one wildcard subscription
//     and are handed to the socket that waits for them.
//   - Messages are encoded and decoded without reflection (frame.go), with
//     no goroutine or timer per Send.
//   - A server subscribes before Listen returns, so a service is reachable
//     as soon as it is registered (with the plugin a new node answered "no
//     responders" for a moment).
//   - Each request (but a stream's) gets its own server socket that ends
//     with its response, so go-micro's server finishes the request's
//     connection and releases its context; with the plugin one socket
//     serves a client connection for its whole life and go-micro keeps
//     every request's context and timer until then, which grew a busy
//     service's heap without bound.
//
// A message is a NATS message to the server's address (an inbox subject,
// the registered node address) with the client socket's subject as reply,
// carrying the JSON of a transport.Message, as with the plugin. A request
// with no server makes NATS answer "no responders", which Recv returns as
// nats.ErrNoResponders, as the plugin does.
package natstransport

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botmesh/botmesh/sdk/workpool"
	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/transport"
)

// Name is the transport's name, as services register it in their node
// metadata; it is the plugin's, since the two are one protocol.
const Name = "nats"

// DefaultTimeout bounds a Recv, as the plugin's default does; go-micro's
// client has its own, shorter, request timeout.
const DefaultTimeout = time.Minute

// streamHeader marks the messages of a stream (go-micro's headers.Stream):
// they share one server socket, as with the plugin.
const streamHeader = "Micro-Stream"

// endOfRequest is what a request's socket gives go-micro's server after
// the response is sent, to end the connection cleanly: "Connection: close"
// makes server.rpcServer.ServeConn return without an error, and the stream
// end marker ("Micro-Error: EOS" for a stream it does not know) makes it
// skip the message. Ending with io.EOF instead would take ServeConn's error
// path, which reads the server's exit channel and can swallow a concurrent
// Stop (go-micro v4.11.0). Marking the request itself "Connection: close"
// would make ServeConn return, and cancel the request's context, while the
// handler runs.
var endOfRequest = transport.Message{Header: map[string]string{
	"Connection":   "close",
	streamHeader:   "natstransport-end",
	"Micro-Error":  "EOS",
	"Content-Type": "application/octet-stream",
}}

// Transport is a go-micro transport.Transport on one NATS connection.
type Transport struct {
	nc *nats.Conn

	mu   sync.RWMutex
	opts transport.Options

	// Client sockets: their replies come on prefix + token.
	replyOnce sync.Once
	replyErr  error
	prefix    string
	seq       atomic.Uint64
	cmu       sync.RWMutex
	clients   map[string]*clientSocket
	calls     *calls // Client's, made on first use

	replays   replays                       // a server's: resent requests
	reconnect atomic.Pointer[chan struct{}] // closed at the next reconnect

	// workers serve requests: go-micro's server, on a new goroutine for
	// each, grew and copied its stack on every request.
	workers *workpool.Pool
}

// workerIdle is how long a worker that served a request waits for the next
// before it exits.
const workerIdle = 10 * time.Second

var _ transport.Transport = (*Transport)(nil)

// New returns a transport that uses nc, which it never closes. Of opts,
// Timeout (of a Recv) and Logger are used; the connection's servers and
// TLS settings are nc's.
func New(nc *nats.Conn, opts ...transport.Option) *Transport {
	t := &Transport{
		nc:      nc,
		opts:    transport.Options{Timeout: DefaultTimeout, Logger: logger.DefaultLogger},
		clients: map[string]*clientSocket{},
		workers: workpool.New(workerIdle),
	}
	for _, o := range opts {
		o(&t.opts)
	}
	t.reconnect.Store(newSignal())
	t.watchConnection()
	return t
}

// Init implements transport.Transport.
func (t *Transport) Init(opts ...transport.Option) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range opts {
		o(&t.opts)
	}
	return nil
}

// Options implements transport.Transport.
func (t *Transport) Options() transport.Options {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.opts
}

// String implements transport.Transport.
func (t *Transport) String() string { return Name }

func (t *Transport) timeout() time.Duration {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.opts.Timeout > 0 {
		return t.opts.Timeout
	}
	return DefaultTimeout
}

func (t *Transport) logf(level logger.Level, format string, args ...any) {
	t.mu.RLock()
	l := t.opts.Logger
	t.mu.RUnlock()
	if l != nil {
		l.Logf(level, format, args...)
	}
}

// Dial implements transport.Transport: a client socket that sends to the
// server at addr. It needs no round trip.
func (t *Transport) Dial(addr string, _ ...transport.DialOption) (transport.Client, error) {
	if addr == "" || strings.ContainsAny(addr, " \t\r\n") {
		return nil, fmt.Errorf("natstransport: bad address %q", addr)
	}
	if err := t.subscribeReplies(); err != nil {
		return nil, err
	}
	if t.nc.IsClosed() {
		return nil, nats.ErrConnectionClosed
	}
	token := strconv.FormatUint(t.seq.Add(1), 36)
	c := &clientSocket{t: t, addr: addr, reply: t.prefix + token, token: token, closed: make(chan struct{})}
	c.notify = make(chan struct{}, 1)
	t.cmu.Lock()
	t.clients[token] = c
	t.cmu.Unlock()
	return c, nil
}

// subscribeReplies subscribes, once, to the replies of client sockets and
// calls.
func (t *Transport) subscribeReplies() error {
	t.replyOnce.Do(func() {
		t.prefix = t.nc.NewInbox() + "."
		sub, err := t.nc.Subscribe(t.prefix+"*", t.onReply)
		if err == nil {
			err = sub.SetPendingLimits(-1, -1)
		}
		t.replyErr = err
	})
	if t.replyErr != nil {
		return fmt.Errorf("natstransport: subscribe to replies: %w", t.replyErr)
	}
	return nil
}

// onReply hands a message to the call or client socket it is for.
func (t *Transport) onReply(m *nats.Msg) {
	token := m.Subject[len(t.prefix):]
	in := incoming{data: m.Data}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		in = incoming{err: nats.ErrNoResponders}
	}
	t.cmu.RLock()
	c, cs := t.clients[token], t.calls
	t.cmu.RUnlock()
	if c != nil {
		c.push(in)
		return
	}
	if cs != nil {
		cs.deliver(token, in)
	}
	// else a late reply to a socket or call that ended meanwhile
}

// incoming is a message for a socket, or the error to return instead.
type incoming struct {
	data []byte
	msg  *transport.Message
	err  error
}

// queue holds a socket's incoming messages until Recv takes them.
type queue struct {
	mu     sync.Mutex
	items  []incoming
	notify chan struct{} // one slot: something was pushed
}

func (q *queue) push(in incoming) {
	q.mu.Lock()
	q.items = append(q.items, in)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *queue) pop() (incoming, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return incoming{}, false
	}
	in := q.items[0]
	q.items[0] = incoming{}
	q.items = q.items[1:]
	return in, true
}

// clientSocket is a transport.Client: requests go to addr, replies come on
// reply.
type clientSocket struct {
	t     *Transport
	addr  string
	reply string
	token string

	queue
	closed    chan struct{}
	closeOnce sync.Once
	timer     *time.Timer // Recv's, reused
}

// Local implements transport.Socket: the reply subject.
func (c *clientSocket) Local() string { return c.reply }

// Remote implements transport.Socket: the server's address.
func (c *clientSocket) Remote() string { return c.addr }

// Send implements transport.Socket.
func (c *clientSocket) Send(m *transport.Message) error {
	select {
	case <-c.closed:
		return io.EOF
	default:
	}
	return publish(c.t.nc, c.addr, c.reply, m)
}

// Recv implements transport.Socket: the next reply, nats.ErrNoResponders
// when no server listens on the address, nats.ErrTimeout after the
// transport's timeout, io.EOF once closed.
func (c *clientSocket) Recv(m *transport.Message) error {
	if m == nil {
		return errors.New("natstransport: Recv into a nil message")
	}
	for {
		if in, ok := c.pop(); ok {
			if in.err != nil {
				return in.err
			}
			return readFrame(in.data, m)
		}
		if c.timer == nil {
			c.timer = time.NewTimer(c.t.timeout())
		} else {
			c.timer.Reset(c.t.timeout())
		}
		select {
		case <-c.notify:
			c.timer.Stop()
		case <-c.closed:
			c.timer.Stop()
			return io.EOF
		case <-c.timer.C:
			return nats.ErrTimeout
		}
	}
}

// Close implements transport.Socket: replies that come later are dropped.
func (c *clientSocket) Close() error {
	c.closeOnce.Do(func() {
		c.t.cmu.Lock()
		delete(c.t.clients, c.token)
		c.t.cmu.Unlock()
		close(c.closed)
	})
	return nil
}

// bufs are encoding buffers: nats.go copies a message before Publish
// returns.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func publish(nc *nats.Conn, subject, reply string, m *transport.Message) error {
	bp := bufs.Get().(*[]byte)
	b := appendFrame((*bp)[:0], m)
	err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Data: b})
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		bufs.Put(bp)
	}
	return err
}

// Listen implements transport.Transport: it subscribes to addr (a new inbox
// for go-micro's default address ":0") and returns once the server has the
// subscription.
func (t *Transport) Listen(addr string, _ ...transport.ListenOption) (transport.Listener, error) {
	if addr == ":0" || addr == "" {
		addr = t.nc.NewInbox()
	}
	if strings.ContainsAny(addr, " \t\r\n") {
		return nil, fmt.Errorf("natstransport: address %q must not contain white space", addr)
	}
	l := &listener{t: t, addr: addr, ready: make(chan struct{}), done: make(chan struct{}), streams: map[string]*serverSocket{}}
	sub, err := t.nc.Subscribe(addr, l.onRequest)
	if err != nil {
		return nil, fmt.Errorf("natstransport: listen on %s: %w", addr, err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("natstransport: listen on %s: %w", addr, err)
	}
	if err := t.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("natstransport: listen on %s: %w", addr, err)
	}
	l.sub = sub
	return l, nil
}

// listener serves the requests that come to its address.
type listener struct {
	t    *Transport
	addr string
	sub  *nats.Subscription

	fn        func(transport.Socket)
	ready     chan struct{} // closed when Accept has fn
	readyOnce sync.Once
	done      chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	streams map[string]*serverSocket // by reply subject
}

// Addr implements transport.Listener.
func (l *listener) Addr() string { return l.addr }

// Close implements transport.Listener: it unsubscribes, and returns once
// the server has dropped the subscription (as Listen returns once it has
// it), so that a request sent after Close gets "no responders" at once
// rather than being dropped here unanswered until the caller's timeout;
// sockets waiting for a message end.
func (l *listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		err = l.sub.Unsubscribe()
		if err == nil && l.t.nc.IsConnected() {
			// A failed flush leaves a subscription that is gone here
			// anyway: nothing to report.
			_ = l.t.nc.FlushTimeout(closeFlushTimeout)
		}
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
			err = nil
		}
		close(l.done)
	})
	return err
}

// closeFlushTimeout bounds the wait of a listener's Close for the server.
const closeFlushTimeout = 5 * time.Second

// Accept implements transport.Listener: fn serves each socket, in its own
// goroutine, until Close.
func (l *listener) Accept(fn func(transport.Socket)) error {
	l.readyOnce.Do(func() {
		l.fn = fn
		close(l.ready)
	})
	<-l.done
	return nil
}

// onRequest starts serving a request, or hands a stream's message to its
// socket.
func (l *listener) onRequest(nm *nats.Msg) {
	if nm.Reply == "" {
		return // nobody to answer
	}
	m := &transport.Message{Header: make(map[string]string, 12)}
	if err := readFrame(nm.Data, m); err != nil {
		l.t.logf(logger.ErrorLevel, "natstransport: dropping a malformed request on %s: %v", l.addr, err)
		return
	}
	select {
	case <-l.ready:
	case <-l.done:
		return
	}
	if m.Header[streamHeader] == "" {
		// A request and its response: the socket ends after the response.
		// A request sent again (the client saw NATS reconnect) is
		// answered once.
		serve, again := l.t.replays.begin(nm.Reply, m.Header[resendHeader] != "")
		if !serve {
			if again != nil {
				_ = l.t.nc.Publish(nm.Reply, again)
			}
			return
		}
		s := l.newSocket(nm.Reply)
		s.sent = make(chan struct{})
		s.push(incoming{msg: m})
		l.t.workers.Go(func() { l.serve(s) })
		return
	}
	l.mu.Lock()
	s := l.streams[nm.Reply]
	if s == nil {
		s = l.newSocket(nm.Reply)
		s.stream = true
		l.streams[nm.Reply] = s
		go l.serve(s)
	}
	l.mu.Unlock()
	s.push(incoming{msg: m})
}

func (l *listener) newSocket(reply string) *serverSocket {
	s := &serverSocket{l: l, reply: reply, closed: make(chan struct{})}
	s.notify = make(chan struct{}, 1)
	return s
}

func (l *listener) serve(s *serverSocket) {
	defer func() {
		if p := recover(); p != nil {
			l.t.logf(logger.ErrorLevel, "natstransport: panic serving %s: %v", l.addr, p)
		}
		_ = s.Close()
	}()
	l.fn(s)
}

// serverSocket is the server's side of a request (or of a stream).
type serverSocket struct {
	l      *listener
	reply  string
	stream bool

	queue
	sent      chan struct{} // a request's: closed once the response is sent
	sendOnce  sync.Once
	ended     bool // a request's: endOfRequest was given
	closed    chan struct{}
	closeOnce sync.Once
}

// Local implements transport.Socket: the listener's address.
func (s *serverSocket) Local() string { return s.l.addr }

// Remote implements transport.Socket: the client's reply subject.
func (s *serverSocket) Remote() string { return s.reply }

// Recv implements transport.Socket: the request (then, for a stream, its
// next messages); io.EOF once the socket or the listener is closed.
func (s *serverSocket) Recv(m *transport.Message) error {
	if m == nil {
		return errors.New("natstransport: Recv into a nil message")
	}
	for {
		if in, ok := s.pop(); ok {
			*m = *in.msg
			return nil
		}
		var sent chan struct{}
		if s.sent != nil && !s.ended {
			sent = s.sent
		}
		select {
		case <-s.notify:
		case <-sent:
			s.ended = true
			m.Header = maps.Clone(endOfRequest.Header)
			m.Body = nil
			return nil
		case <-s.closed:
			return io.EOF
		case <-s.l.done:
			return io.EOF
		}
	}
}

// Send implements transport.Socket: to the client's reply subject.
func (s *serverSocket) Send(m *transport.Message) error {
	select {
	case <-s.closed:
		return io.EOF
	default:
	}
	if s.sent == nil {
		return publish(s.l.t.nc, s.reply, "", m)
	}
	err := s.l.t.respond(s.reply, m)
	s.sendOnce.Do(func() { close(s.sent) })
	return err
}

// Close implements transport.Socket.
func (s *serverSocket) Close() error {
	s.closeOnce.Do(func() {
		if s.stream {
			s.l.mu.Lock()
			if s.l.streams[s.reply] == s {
				delete(s.l.streams, s.reply)
			}
			s.l.mu.Unlock()
		}
		if s.sent != nil {
			select {
			case <-s.sent:
			default:
				s.l.t.replays.done(s.reply, nil) // ended unanswered
			}
		}
		close(s.closed)
	})
	return nil
}
