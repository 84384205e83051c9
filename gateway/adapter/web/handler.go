package web

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
// serves it on --web_address. It refuses requests whose Host is not this
// machine when listening on loopback (DNS rebinding), and sets a content
// security policy that lets the page load nothing from elsewhere.
func (in *Input) Handler() http.Handler {
	page, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+WebsocketPath, in.serveWS)
	mux.Handle("GET /", http.FileServerFS(page))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !in.hostOK(r.Host) {
			in.log.Warn("request refused: unexpected Host", "host", truncate(r.Host, 64), "remote", r.RemoteAddr)
			http.Error(w, "unexpected Host header: this web chat answers on localhost only", http.StatusMisdirectedRequest)
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

// hostOK reports whether a request's Host may be served: any when
// listening beyond loopback (the token guards it), else a loopback name or
// an origin given in --web_origins.
func (in *Input) hostOK(hostport string) bool {
	if !in.loopback {
		return true
	}
	if in.extraOrigins[strings.ToLower(hostport)] {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return isLoopback(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
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
		out:    make(chan []byte, sendQueue),
		done:   make(chan struct{}),
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

// conn is one websocket: one tab.
type conn struct {
	in     *Input
	id     string
	ws     *websocket.Conn
	remote string
	out    chan []byte   // frames for the writer
	done   chan struct{} // closed when the reader ends
	away   chan struct{} // closed by Stop: say goodbye and close
	once   sync.Once
	// greeted is set once the hello is taken and the writer runs (or is
	// about to): from then on the writer says goodbye.
	greeted atomic.Bool

	// Set by the hello.
	sid, key, name string
	cv             *conversation // guarded by in.mu
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
	var wg sync.WaitGroup
	wg.Go(c.write)
	defer wg.Wait()
	defer close(c.done)
	c.attach(hello)
	log = log.With("user", "web:"+c.sid)
	log.Debug("tab connected", "conversation", c.key, "remote", c.remote)
	err = c.read()
	log.Debug("tab disconnected", "conversation", c.key, "reason", err)
}

// hello waits for the hello frame. It returns nil, nil when it refused the
// connection (wrong token) and said so.
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
		if c.in.token != "" && !tokenEqual(f.Token, c.in.token) {
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
		return &f, nil
	}
}

// attach opens the session of a hello and joins its conversation: the
// welcome goes out first, then the replies the tab missed.
func (c *conn) attach(f *inFrame) {
	in := c.in
	sid, ok := in.sess.check(f.Session)
	ticket := f.Session
	if !ok {
		sid, ticket = in.sess.issue()
	}
	conv := f.Conversation
	if conv == "" {
		conv = randomID()
	}
	c.sid, c.key, c.name = sid, sid+"/"+conv, "web-"+sid[:6]

	in.mu.Lock()
	defer in.mu.Unlock()
	cv := in.conversation(c.key)
	cv.conns[c] = struct{}{}
	c.cv = cv
	welcome, _ := encode(outFrame{Type: TypeWelcome, Session: ticket, User: "web:" + sid, Name: c.name, Conversation: conv, Epoch: cv.epoch, MaxFrame: in.maxFrame})
	c.enqueue(welcome)
	seen := f.Seen
	if f.Epoch != cv.epoch {
		seen = 0
	}
	missed, lost := cv.since(seen)
	if lost && f.Epoch == cv.epoch {
		e, _ := encode(outFrame{Type: TypeError, Code: CodeLost, Message: "some replies could not be kept while this tab was away"})
		c.enqueue(e)
	}
	for _, m := range missed {
		c.enqueue(m)
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
		Data: []byte(f.Text),
		Meta: map[string]string{MetaConn: c.id},
		Time: timestamppb.Now(),
	}
	select {
	case c.in.incoming <- ev:
		c.in.log.Debug("message taken", "conn", c.id, "event", ev.Id, "bytes", len(ev.Data))
		c.tell(outFrame{Type: TypeAck, InReplyTo: f.ID})
		return true
	case <-c.in.stop:
		return false
	case <-c.away:
		return false
	}
}

// tell queues a frame for this connection only.
func (c *conn) tell(f outFrame) {
	data, err := encode(f)
	if err != nil {
		return
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	c.enqueue(data)
}

// enqueue queues data for the writer without waiting; a browser too slow
// to keep up is disconnected (its replies are kept for when it comes
// back). in.mu is held.
func (c *conn) enqueue(data []byte) bool {
	select {
	case c.out <- data:
		return true
	default:
		c.in.log.Warn("tab too slow: disconnected", "conn", c.id, "queued", len(c.out))
		_ = c.ws.NetConn().Close()
		return false
	}
}

// write sends queued frames and pings until the reader ends or Stop says
// goodbye.
func (c *conn) write() {
	ping := time.NewTicker(pingPeriod)
	defer ping.Stop()
	for {
		select {
		case data := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
				_ = c.ws.NetConn().Close()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				_ = c.ws.NetConn().Close()
				return
			}
		case <-c.away:
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "botmesh web chat stopped"), time.Now().Add(time.Second))
			_ = c.ws.NetConn().Close()
			return
		case <-c.done:
			return
		}
	}
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
