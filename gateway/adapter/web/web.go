// Package web is the web chat input: it serves a chat page (embedded in the
// binary) and a websocket endpoint on one address. Each browser tab is a
// conversation; the replies go back to the tab that asked.
//
// The page and the server speak JSON frames over the websocket subprotocol
// botmesh.web.v1 (see frame.go). The first frame is a hello carrying the
// session ticket the server issued before (kept by the page in
// sessionStorage), the tab's conversation id and, when --web_token is set,
// the token; the server answers with a welcome, or, for a ticket it did not
// issue or has forgotten, with an unknown_session error, after which the
// page says hello again without one and gets a new session (session.go). Each message is then
// acknowledged when the gateway has it, and answered with reply frames.
//
// Replies are kept, numbered, in their conversation's history, bounded by
// historyMax replies and historyBytes bytes. A connection does not hold
// copies of them: it holds a cursor into that history (the number of the
// last reply it wrote), and its writer catches up from the history as fast
// as the browser reads. So a burst of replies, or a tab that is slow or
// away (reloading, reconnecting), loses nothing while the history holds
// it; a tab that comes back says which reply it saw last and gets every one
// after it. Only when more replies came than the history keeps is the tab
// told, plainly, how many it missed (an error frame with code lost).
package web

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/flagenv"
)

// Name is the input's name and platform.
const Name = "web"

// DefaultAddress is where the page is served unless --web_address says
// otherwise.
const DefaultAddress = "127.0.0.1:8080"

// DefaultMaxFrame is the largest frame taken from a browser, in bytes. It is
// well above the gateway's --max_message_bytes (64 KiB), so that a long
// message reaches the gateway and gets its explanation; a larger frame is
// answered with a too_big error frame, and one over 4 times this closes the
// connection (close code 1009) without being read.
const DefaultMaxFrame = 1 << 20

// Tunables; not flags, since nobody has needed to change them.
const (
	helloTimeout    = 10 * time.Second // a connection must say hello within
	writeTimeout    = 10 * time.Second // one frame to one browser
	pingPeriod      = 30 * time.Second // websocket pings keep proxies and dead peers honest
	pongTimeout     = 2*pingPeriod + 10*time.Second
	ctlQueue        = 64               // welcome, acks and errors waiting for one browser; the reader waits when full
	conversationTTL = 10 * time.Minute // how long a conversation with no tab is remembered
	sweepInterval   = time.Minute
)

// The history of one conversation: the replies its tabs have not all read,
// or may ask for again when they come back. It keeps the last historyMax
// replies and at most historyBytes bytes of them (encoded frames), whichever
// is less, and always the newest one. A burst of 500 replies of 8,000
// bytes of plain text each fits whole (issue 11: 115 replies backed up
// behind a NATS restart and were lost with the old 64-frame queue per
// connection). Each conversation lives until conversationTTL after its last
// tab left, so the memory is at most historyBytes (plus 48 bytes a reply)
// per conversation seen in the last conversationTTL.
const (
	historyMax   = 1024
	historyBytes = 4 << 20
)

// Input serves the chat page and its websocket.
type Input struct {
	// Flags.
	address        string
	token          string
	tokenFile      string
	allowAnonymous bool
	origins        string
	allowedHosts   string
	maxFrame       int
	// prefix is dropped from the start of a message (--prefix).
	prefix string

	// Set by Init.
	log          *slog.Logger
	sess         *sessions
	extraOrigins map[string]bool // host[:port] of other allowed Origins
	hosts        hostSet         // the Host names served

	incoming chan *chatopsv1.Event // messages taken, waiting for Recv
	stop     chan struct{}
	stopOnce sync.Once
	conns    sync.WaitGroup // connection handlers

	mu        sync.Mutex
	srv       *http.Server
	ln        net.Listener
	listening chan struct{} // closed once the listener is up
	serveErr  error         // why the listener stopped, if it did
	convs     map[string]*conversation
	live      map[*conn]struct{}
	lastSweep time.Time
}

var (
	_ adapter.Input    = (*Input)(nil)
	_ adapter.Conn     = (*Input)(nil)
	_ adapter.Healther = (*Input)(nil)
)

// New returns a web input with the default flags; it is the constructor the
// gateway registers.
func New() adapter.Input { return NewInput() }

// NewInput returns a web input with the default flags.
func NewInput() *Input {
	return &Input{
		address:   DefaultAddress,
		maxFrame:  DefaultMaxFrame,
		incoming:  make(chan *chatopsv1.Event),
		stop:      make(chan struct{}),
		listening: make(chan struct{}),
		convs:     map[string]*conversation{},
		live:      map[*conn]struct{}{},
	}
}

// String implements adapter.Input.
func (in *Input) String() string { return Name }

// Flags implements adapter.Input.
func (in *Input) Flags(fs *flag.FlagSet) {
	fs.StringVar(&in.address, "web_address", in.address, "host:port the web chat page and its websocket listen on")
	fs.StringVar(&in.token, "web_token", in.token, "shared secret the web page asks for (prefer the environment or --web_token_file: command lines are visible to other users)")
	fs.StringVar(&in.tokenFile, "web_token_file", in.tokenFile, "file holding the web token (first line)")
	fs.BoolVar(&in.allowAnonymous, "web_allow_anonymous", in.allowAnonymous, "serve the web chat on a non-loopback address without a token (anyone who reaches it can run commands)")
	fs.StringVar(&in.origins, "web_origins", in.origins, "comma-separated origins allowed besides the page's own, e.g. https://chat.example.com behind a proxy")
	fs.StringVar(&in.allowedHosts, "web_allowed_hosts", in.allowedHosts, "comma-separated host names the web chat answers to besides localhost, the --web_address host and the --web_origins hosts, e.g. chat.example.com (a request with another Host is refused: DNS rebinding); * for any")
	fs.IntVar(&in.maxFrame, "web_max_frame", in.maxFrame, "largest websocket frame taken from a browser, in bytes")
}

// Init implements adapter.Input: it checks the flags and reads the token
// file. It does not listen.
func (in *Input) Init(env adapter.Env) error {
	in.log = env.Log
	in.prefix = env.Prefix
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.maxFrame < 1024 {
		return fmt.Errorf("web: --web_max_frame %d is too small (at least 1024)", in.maxFrame)
	}
	if in.tokenFile != "" {
		if in.token != "" {
			return errors.New("web: give --web_token or --web_token_file, not both")
		}
		b, err := os.ReadFile(in.tokenFile)
		if err != nil {
			return fmt.Errorf("web: token file: %w", err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		in.token = strings.TrimSpace(first)
		if in.token == "" {
			return fmt.Errorf("web: token file %s is empty", in.tokenFile)
		}
	}
	host, _, err := net.SplitHostPort(in.address)
	if err != nil {
		return fmt.Errorf("web: --web_address %q: %w", in.address, err)
	}
	if !isLoopback(host) && in.token == "" && !in.allowAnonymous {
		return fmt.Errorf("web: --web_address %s is reachable from other hosts: set --web_token (or BOTMESH_WEB_TOKEN, --web_token_file), or --web_allow_anonymous to let anyone who reaches it run commands", in.address)
	}
	in.extraOrigins = map[string]bool{}
	for o := range strings.SplitSeq(in.origins, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("web: --web_origins: %q is not an origin like https://chat.example.com", o)
		}
		in.extraOrigins[strings.ToLower(u.Host)] = true
	}
	in.hosts, err = newHostSet(host, in.allowedHosts, in.extraOrigins)
	if err != nil {
		return err
	}
	in.sess = newSessions()
	return nil
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Start implements adapter.Input: it listens on --web_address and serves
// the page. It returns once listening.
func (in *Input) Start(context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.srv != nil {
		return errors.New("web: started twice")
	}
	select {
	case <-in.stop:
		return adapter.ErrClosed
	default:
	}
	ln, err := net.Listen("tcp", in.address)
	if errors.Is(err, syscall.EADDRINUSE) {
		return &inUseError{addr: in.address, err: err}
	}
	if err != nil {
		return fmt.Errorf("web: listen on %s (set --web_address; port 0 picks a free one): %w", in.address, err)
	}
	in.ln = ln
	in.srv = &http.Server{
		Handler:           in.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(in.log.Handler(), slog.LevelDebug),
	}
	close(in.listening)
	in.log.Info("web chat listening", "url", in.URL(), "token_required", in.token != "")
	srv := in.srv
	in.conns.Go(func() {
		err := srv.Serve(ln)
		in.mu.Lock()
		in.serveErr = err
		in.mu.Unlock()
		if !errors.Is(err, http.ErrServerClosed) {
			in.log.Error("web chat listener failed", "err", err)
		}
	})
	return nil
}

// inUseError is Start's error when another program listens on
// --web_address: a sentence for the person who started botmesh, with the
// flag and variable that move the chat.
type inUseError struct {
	addr string
	err  error
}

func (e *inUseError) Error() string {
	return fmt.Sprintf("the web chat cannot listen on %s: the address is in use (by another botmesh, or another program); set --web_address (or %s) to a free address (port 0: any free port)",
		e.addr, flagenv.Name("web_address"))
}

func (e *inUseError) Unwrap() error { return e.err }

// Listening is closed once Start has bound the listener; URL is valid from
// then on.
func (in *Input) Listening() <-chan struct{} { return in.listening }

// URL returns the page's address, http://host:port/, once listening (the
// configured address before).
func (in *Input) URL() string {
	addr := in.address
	select {
	case <-in.listening:
		addr = in.ln.Addr().String()
	default:
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// Healthy implements adapter.Healther: nil while the listener is up.
func (in *Input) Healthy() error {
	select {
	case <-in.listening:
	default:
		return errors.New("web: not listening yet")
	}
	select {
	case <-in.stop:
		return errors.New("web: stopped")
	default:
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.serveErr != nil {
		return fmt.Errorf("web: listener stopped: %w", in.serveErr)
	}
	return nil
}

// Stream implements adapter.Input; the input is its own Conn.
func (in *Input) Stream(context.Context) (adapter.Conn, error) { return in, nil }

// Stop implements adapter.Input: it closes the listener and every
// websocket (close code 1001, so pages show that the server went away and
// reconnect), and waits for the connection handlers until ctx ends.
func (in *Input) Stop(ctx context.Context) error {
	in.stopOnce.Do(func() {
		in.mu.Lock()
		close(in.stop) // under mu: track adds no connection after this
		srv := in.srv
		conns := make([]*conn, 0, len(in.live))
		for c := range in.live {
			conns = append(conns, c)
		}
		in.mu.Unlock()
		if srv != nil {
			// Close, not Shutdown: websockets are hijacked and closed
			// below, and plain page requests are short.
			_ = srv.Close()
		}
		for _, c := range conns {
			c.goAway()
		}
	})
	done := make(chan struct{})
	go func() {
		in.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("web: connections still open: %w", ctx.Err())
	}
}

// Close implements adapter.Conn.
func (in *Input) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return in.Stop(ctx)
}

// Recv implements adapter.Conn: it returns the next message any browser
// sent.
func (in *Input) Recv(ctx context.Context) (*chatopsv1.Event, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-in.stop:
		return nil, adapter.ErrClosed
	case ev := <-in.incoming:
		return ev, nil
	}
}

// Send implements adapter.Conn: it keeps the reply in its conversation's
// history and wakes the tab that sent the message if that is still
// connected, else the conversation's other tabs; their writers take it from
// the history. A tab that is away (reloading, reconnecting) gets it when it
// comes back. Send never blocks on a browser.
func (in *Input) Send(_ context.Context, ev *chatopsv1.Event) error {
	key := ev.GetTo()
	if key == "" {
		return errors.New("web: reply without a conversation (To)")
	}
	sid, _, _ := strings.Cut(key, "/")
	f := replyFrame(ev, strings.TrimPrefix(ev.GetInReplyTo(), eventIDPrefix(sid)))
	connID := ev.GetMeta()[MetaConn]

	in.mu.Lock()
	defer in.mu.Unlock()
	cv := in.conversation(key)
	f.Seq = cv.seq + 1
	data, err := encode(f)
	if err != nil {
		return fmt.Errorf("web: encode reply: %w", err)
	}
	cv.seq = f.Seq
	only := ""
	if cv.open(connID) {
		only = connID
	}
	cv.keep(kept{seq: cv.seq, data: data, only: only})
	for c := range cv.conns {
		if only == "" || c.id == only {
			c.wakeUp()
		}
	}
	if len(cv.conns) == 0 {
		in.log.Debug("reply kept until the tab comes back", "conversation", key, "event", ev.GetInReplyTo(), "seq", cv.seq)
	}
	return nil
}

// MetaConn is the Event meta key that names the websocket connection a
// message came from, so that its reply goes back to the same tab.
const MetaConn = "web.conn"

// eventIDPrefix starts the ids of events from session sid; the browser's
// message id follows, so that a message the page sends again after a
// reconnect keeps its id and the gateway drops the repeat.
func eventIDPrefix(sid string) string { return "web:" + sid + ":" }

// conversation is one tab's conversation: its open connections (usually
// one) and its history of replies, numbered, from which each connection's
// writer takes them in order.
type conversation struct {
	conns   map[*conn]struct{}
	epoch   string    // changes when the conversation is made anew, resetting seq
	seq     uint64    // number of the last reply
	history []kept    // oldest first; numbered seq-len(history)+1 … seq
	bytes   int       // of history's frames
	idle    time.Time // when the last connection left
}

// kept is a reply in a conversation's history.
type kept struct {
	seq  uint64
	data []byte // the encoded reply frame
	// only is the id of the connection the reply is for, when the message
	// it answers came from a connection still open then: the
	// conversation's other connections open then skip it, and those that
	// join later (a tab coming back) get it. Empty: for every one.
	only string
}

// conversation returns the conversation of key, making it if needed.
// in.mu is held.
func (in *Input) conversation(key string) *conversation {
	now := time.Now()
	if now.Sub(in.lastSweep) > sweepInterval {
		in.lastSweep = now
		for k, cv := range in.convs {
			if len(cv.conns) == 0 && now.Sub(cv.idle) > conversationTTL {
				delete(in.convs, k)
			}
		}
	}
	cv := in.convs[key]
	if cv == nil {
		cv = &conversation{conns: map[*conn]struct{}{}, epoch: randomID()[:8], idle: now}
		in.convs[key] = cv
	}
	return cv
}

// keep adds a reply to the history, dropping the oldest beyond historyMax
// replies or historyBytes bytes; the newest is always kept. An open
// connection that had not written a dropped reply moves past it, and
// counts it as missed if it was for it. in.mu is held.
func (cv *conversation) keep(k kept) {
	cv.history = append(cv.history, k)
	cv.bytes += len(k.data)
	for len(cv.history) > 1 && (len(cv.history) > historyMax || cv.bytes > historyBytes) {
		old := cv.history[0]
		for c := range cv.conns {
			if c.sent < old.seq {
				c.sent = old.seq
				if c.wants(old) {
					c.missed++
				}
			}
		}
		cv.bytes -= len(old.data)
		cv.history[0] = kept{} // let the frame go now, not when append moves the slice
		cv.history = cv.history[1:]
	}
}

// open reports whether the connection of id is in the conversation.
// in.mu is held.
func (cv *conversation) open(id string) bool {
	for c := range cv.conns {
		if c.id == id {
			return true
		}
	}
	return false
}

// first returns the number of the oldest reply in the history (seq+1 when
// it is empty). in.mu is held.
func (cv *conversation) first() uint64 {
	return cv.seq - uint64(len(cv.history)) + 1
}

// next returns what connection c writes next after the reply numbered
// c.sent, and moves c.sent past it: a lost frame when replies for c were
// dropped before c wrote them, else the next reply for c; nil when c has
// them all. in.mu is held.
func (cv *conversation) next(c *conn) []byte {
	if c.missed > 0 {
		n := c.missed
		c.missed = 0
		return lostFrame(n)
	}
	for c.sent < cv.seq {
		first := cv.first()
		if c.sent+1 < first { // not expected: keep moves c.sent past what it drops
			n := first - 1 - c.sent
			c.sent = first - 1
			return lostFrame(n)
		}
		k := cv.history[c.sent+1-first]
		c.sent = k.seq
		if c.wants(k) {
			return k.data
		}
	}
	return nil
}

// wants reports whether connection c is to write reply k: k is for every
// connection, or for c, or for one that was open before c joined (c is the
// tab coming back). in.mu is held.
func (c *conn) wants(k kept) bool {
	return k.only == "" || k.only == c.id || k.seq <= c.joined
}
