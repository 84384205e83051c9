package web

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// static holds the page: HTML, CSS and JavaScript written by hand, no
// third-party code, nothing fetched from elsewhere.
//
//go:embed static
var static embed.FS

// WebsocketPath is where the page's websocket connects.
const WebsocketPath = "/ws"

// Close codes the server uses besides the standard ones: the page asks for
// the token on CloseUnauthorized and does not reconnect by itself.
const CloseUnauthorized = 4401

// Handler returns the HTTP handler of the page and its websocket; Start
// serves it on --web_address. It refuses requests whose Host is not one the
// chat answers to (421 Misdirected Request; see hostSet: DNS rebinding),
// and sets a content security policy that lets the page load nothing from
// elsewhere.
func (in *Input) Handler() http.Handler {
	page, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+WebsocketPath, in.serveWS)
	mux.Handle("GET /", http.FileServerFS(page))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !in.hosts.ok(r.Host) {
			// The Host header, not the request: no token or ticket is in
			// a header, but nothing else is needed.
			in.log.Warn("request refused: Host not allowed (see --web_allowed_hosts)", "host", truncate(r.Host, 64), "remote", r.RemoteAddr, "path", truncate(r.URL.Path, 64))
			http.Error(w, "unexpected Host header: this web chat does not answer to that name (its operator can add it to --web_allowed_hosts)", http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		mux.ServeHTTP(w, r)
	})
}

// originOK is the websocket's Origin check: the page's own origin (same
// host and port as the request), or one in --web_origins. A request with no
// Origin does not come from a browser page, so it cannot be a cross-site
// one; the token, if any, still applies.
func (in *Input) originOK(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) || in.extraOrigins[strings.ToLower(u.Host)]
}

func (in *Input) serveWS(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "this is the web chat's websocket endpoint; open / in a browser", http.StatusBadRequest)
		return
	}
	if !hasSubprotocol(r) {
		http.Error(w, "websocket subprotocol "+Subprotocol+" required", http.StatusBadRequest)
		return
	}
	if !in.originOK(r) {
		in.log.Warn("websocket refused: foreign origin", "origin", truncate(r.Header.Get("Origin"), 100), "remote", r.RemoteAddr)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	up := websocket.Upgrader{
		Subprotocols:     []string{Subprotocol},
		CheckOrigin:      func(*http.Request) bool { return true }, // checked above
		HandshakeTimeout: 10 * time.Second,
	}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		in.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return // Upgrade has answered
	}
	c := &conn{
		in:     in,
		id:     randomID()[:12],
		ws:     ws,
		remote: r.RemoteAddr,
		ctl:    make(chan []byte, ctlQueue),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		wdone:  make(chan struct{}),
		away:   make(chan struct{}),
	}
	if !in.track(c) {
		_ = c.writeNow(outFrame{Type: TypeError, Code: CodeStopping, Message: "the web chat is shutting down"})
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server stopping"), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	defer in.untrack(c)
	c.serve()
}

func hasSubprotocol(r *http.Request) bool {
	for _, p := range websocket.Subprotocols(r) {
		if p == Subprotocol {
			return true
		}
	}
	return false
}

// track records a new connection; false after Stop.
func (in *Input) track(c *conn) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	select {
	case <-in.stop:
		return false
	default:
	}
	in.live[c] = struct{}{}
	in.conns.Add(1)
	return true
}

func (in *Input) untrack(c *conn) {
	if c.sid != "" {
		in.sess.release(c.sid)
	}
	in.mu.Lock()
	delete(in.live, c)
	if c.cv != nil {
		delete(c.cv.conns, c)
		if len(c.cv.conns) == 0 {
			c.cv.idle = time.Now()
		}
	}
	in.mu.Unlock()
	in.conns.Done()
}

// conn is one websocket: one tab. Two kinds of frames go to it: its own
// (welcome, acks, errors), queued in ctl by the reader's goroutine, which
// waits while ctl is full; and its conversation's replies, which it does
// not queue: the writer takes them from the conversation's history, after
// the last one it wrote (sent), so a slow tab slows its writer and loses
// nothing the history holds.
type conn struct {
	in     *Input
	id     string
	ws     *websocket.Conn
	remote string
	ctl    chan []byte   // this connection's own frames, for the writer
	wake   chan struct{} // a reply is in the history (one slot: wakes, never waits)
	done   chan struct{} // closed when the reader ends
	wdone  chan struct{} // closed when the writer ends
	away   chan struct{} // closed by Stop: say goodbye and close
	once   sync.Once
	// greeted is set once the hello is taken and the writer runs (or is
	// about to): from then on the writer says goodbye.
	greeted atomic.Bool

	// Set by the hello. sid is released by untrack once set.
	sid, ticket, key, name string
	cv                     *conversation // guarded by in.mu
	sent                   uint64        // the last reply of cv written (or skipped); guarded by in.mu
	joined                 uint64        // cv.seq when this connection joined; guarded by in.mu
	missed                 uint64        // replies for it dropped from cv before it wrote them; guarded by in.mu
}

// serve runs the connection: hello, then messages until the browser goes
// or the input stops.
func (c *conn) serve() {
	log := c.in.log.With("conn", c.id)
	defer func() { _ = c.ws.Close() }()
	hello, err := c.hello()
	if err != nil {
		log.Debug("websocket closed before hello", "remote", c.remote, "err", err)
		return
	}
	if hello == nil {
		return // refused, and told why
	}
	c.greeted.Store(true)
	c.attach(hello) // before the writer: the welcome goes first
	var wg sync.WaitGroup
	wg.Go(c.write)
	defer wg.Wait()
	defer close(c.done)
	log = log.With("user", "web:"+c.sid)
	log.Debug("tab connected", "conversation", c.key, "remote", c.remote)
	err = c.read()
	log.Debug("tab disconnected", "conversation", c.key, "reason", err)
}

// hello waits for the hello frame, and opens its session: the one its
// ticket names if the server issued it, a new one if it has none. It
// returns nil, nil when it refused the connection (wrong token) and said
// so. A hello with a ticket the server does not know is answered with an
// unknown_session error, and the connection waits for another hello.
func (c *conn) hello() (*inFrame, error) {
	deadline := time.Now().Add(helloTimeout)
	_ = c.ws.SetReadDeadline(deadline)
	c.ws.SetReadLimit(int64(c.in.maxFrame))
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		var f inFrame
		if typ != websocket.TextMessage {
			err = &frameError{code: CodeBadFrame, msg: "binary frames are not understood: send JSON text frames"}
		} else {
			f, err = decodeFrame(data)
		}
		if err == nil && f.Type != TypeHello {
			err = &frameError{code: CodeNoHello, msg: `say hello first: the first frame must be {"type":"hello"}`, id: f.ID}
		}
		if fe := (*frameError)(nil); errors.As(err, &fe) {
			if err := c.writeNow(outFrame{Type: TypeError, Code: fe.code, Message: fe.msg, InReplyTo: fe.id}); err != nil {
				return nil, err
			}
			continue
		}
		if c.in.token != "" && !tokenEqual(f.Token, c.in.token.Reveal()) {
			what := "wrong token"
			if f.Token == "" {
				// A page's first try: it asks the user next.
				what = "this web chat needs a token"
				c.in.log.Debug("websocket refused: no token", "remote", c.remote)
			} else {
				c.in.log.Warn("websocket refused: wrong token", "remote", c.remote)
			}
			_ = c.writeNow(outFrame{Type: TypeError, Code: CodeUnauthorized, Message: what})
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseUnauthorized, what), time.Now().Add(time.Second))
			return nil, nil
		}
		// The token admits; the session says who. A ticket the server did
		// not issue gets no identity, not even a new one on this hello:
		// the page says hello again without it (issue 12).
		if f.Session == "" {
			c.sid, c.ticket = c.in.sess.issue()
			return &f, nil
		}
		sid, err := c.in.sess.resume(f.Session)
		if err == nil {
			c.sid, c.ticket = sid, f.Session
			return &f, nil
		}
		id, _, _ := strings.Cut(f.Session, ".") // the secret is not logged
		if errors.Is(err, errSessionSecret) {
			c.in.log.Warn("hello refused: wrong session secret", "remote", c.remote, "session", truncate(id, 24))
		} else {
			c.in.log.Info("hello refused: unknown or expired session", "remote", c.remote, "session", truncate(id, 24))
		}
		if err := c.writeNow(outFrame{Type: TypeError, Code: CodeUnknownSession, Message: "this session is unknown or expired: say hello again without it for a new one"}); err != nil {
			return nil, err
		}
	}
}

// attach opens the session of a hello and joins its conversation: it
// queues the welcome and sets the connection's place in the conversation's
// history after the last reply the tab has, so that the writer sends the
// welcome, then the replies the tab missed (or how many of them the history
// could not keep), then the new ones.
func (c *conn) attach(f *inFrame) {
	in := c.in
	sid, ticket := c.sid, c.ticket
	conv := f.Conversation
	if conv == "" {
		conv = randomID()
	}
	c.key, c.name = sid+"/"+conv, "web-"+sid[:6]

	in.mu.Lock()
	defer in.mu.Unlock()
	cv := in.conversation(c.key)
	cv.conns[c] = struct{}{}
	c.cv = cv
	welcome, _ := encode(outFrame{Type: TypeWelcome, Session: ticket, User: "web:" + sid, Name: c.name, Conversation: conv, Epoch: cv.epoch, MaxFrame: in.maxFrame})
	c.ctl <- welcome // the first frame: ctl is empty
	// A tab that knows another epoch (the server restarted, or forgot the
	// conversation) has none of this one's replies.
	c.sent, c.joined = 0, cv.seq
	if f.Epoch == cv.epoch {
		c.sent = min(f.Seen, cv.seq)
	}
	if first := cv.first(); c.sent+1 < first {
		c.missed, c.sent = first-1-c.sent, first-1
	}
}

// read takes frames until the connection ends.
func (c *conn) read() error {
	in := c.in
	// Frames up to maxFrame are read; bigger ones are drained and refused,
	// up to 4 times maxFrame, past which the websocket library closes the
	// connection (1009) without reading them.
	c.ws.SetReadLimit(4 * int64(in.maxFrame))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongTimeout)) })
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(pongTimeout))
		typ, r, err := c.ws.NextReader()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(r, int64(in.maxFrame)+1))
		if err != nil {
			return err
		}
		var f inFrame
		switch {
		case len(data) > in.maxFrame:
			n, cerr := io.Copy(io.Discard, r)
			if cerr != nil {
				return cerr
			}
			in.log.Info("frame refused: too big", "conn", c.id, "bytes", int64(len(data))+n)
			err = &frameError{code: CodeTooBig, msg: fmt.Sprintf("frame of %d bytes refused: the limit is %d", int64(len(data))+n, in.maxFrame)}
		case typ != websocket.TextMessage:
			err = &frameError{code: CodeBadFrame, msg: "binary frames are not understood: send JSON text frames"}
		default:
			f, err = decodeFrame(data)
			if err == nil && f.Type == TypeHello {
				err = &frameError{code: CodeBadFrame, msg: "hello twice: this connection's session is open"}
			}
		}
		if fe := (*frameError)(nil); errors.As(err, &fe) {
			in.log.Debug("frame refused", "conn", c.id, "code", fe.code, "reason", fe.msg)
			c.tell(outFrame{Type: TypeError, Code: fe.code, Message: fe.msg, InReplyTo: fe.id})
			continue
		}
		if !c.deliver(f) {
			return errors.New("input stopped")
		}
	}
}

// deliver hands a message to Recv and acknowledges it once taken; false
// when the input or the connection stopped first.
func (c *conn) deliver(f inFrame) bool {
	ev := &chatopsv1.Event{
		Id:   eventIDPrefix(c.sid) + f.ID,
		Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE,
		From: &chatopsv1.Peer{Id: "web:" + c.sid, Name: c.name},
		To:   c.key,
		Data: []byte(adapter.Addressing{Names: []string{adapter.DefaultName}, Prefix: c.in.prefix}.Direct(f.Text)),
		Meta: map[string]string{MetaConn: c.id},
		Time: timestamppb.Now(),
	}
	id, size := ev.Id, len(ev.Data) // once handed on, ev is the receiver's
	select {
	case c.in.incoming <- ev:
		c.in.log.Debug("message taken", "conn", c.id, "event", id, "bytes", size)
		c.tell(outFrame{Type: TypeAck, InReplyTo: f.ID})
		return true
	case <-c.in.stop:
		return false
	case <-c.away:
		return false
	}
}

// tell queues a frame for this connection only. It is called from the
// reader's goroutine only, and waits while the queue is full: a browser
// that sends faster than it reads is read more slowly in turn.
func (c *conn) tell(f outFrame) {
	data, err := encode(f)
	if err != nil {
		return
	}
	select {
	case c.ctl <- data:
	case <-c.wdone: // the connection is closing
	case <-c.away:
	}
}

// wakeUp tells the writer that the history has a reply for it. in.mu is
// held.
func (c *conn) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default: // awake already
	}
}

// write sends the connection's own frames, the conversation's replies and
// pings until the reader ends or Stop says goodbye. Its own frames go
// first; replies are taken from the history one at a time, so the writer
// goes as fast as the browser reads. A browser that takes no frame for
// writeTimeout is disconnected, and gets the rest when it comes back.
func (c *conn) write() {
	defer close(c.wdone)
	ping := time.NewTicker(pingPeriod)
	defer ping.Stop()
	for {
		// Between two frames: goodbye, the end, a ping.
		select {
		case <-c.away:
			c.goodbye()
			return
		case <-c.done:
			return
		case <-ping.C:
			if !c.ping() {
				return
			}
		default:
		}
		data := c.pending()
		if data == nil {
			select {
			case <-c.away:
				c.goodbye()
				return
			case <-c.done:
				return
			case <-ping.C:
				if !c.ping() {
					return
				}
			case data = <-c.ctl:
			case <-c.wake:
			}
		}
		if data == nil {
			continue
		}
		_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.in.log.Info("tab not reading: disconnected; its replies are kept for when it comes back", "conn", c.id, "timeout", writeTimeout)
			} else {
				c.in.log.Debug("write failed", "conn", c.id, "err", err)
			}
			_ = c.ws.NetConn().Close()
			return
		}
	}
}

// pending returns the next frame to write, if any: the connection's own
// first, else the next reply from the history.
func (c *conn) pending() []byte {
	select {
	case data := <-c.ctl:
		return data
	default:
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	return c.cv.next(c)
}

func (c *conn) ping() bool {
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
		_ = c.ws.NetConn().Close()
		return false
	}
	return true
}

func (c *conn) goodbye() {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "botmesh web chat stopped"), time.Now().Add(time.Second))
	_ = c.ws.NetConn().Close()
}

// writeNow writes a frame from the reader's goroutine, before the writer
// runs.
func (c *conn) writeNow(f outFrame) error {
	data, err := encode(f)
	if err != nil {
		return err
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

// goAway makes the connection say goodbye (close code 1001) and close. A
// connection still waiting for its hello is just closed.
func (c *conn) goAway() {
	c.once.Do(func() {
		close(c.away)
		_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
		if !c.greeted.Load() {
			_ = c.ws.NetConn().Close()
		}
	})
}
