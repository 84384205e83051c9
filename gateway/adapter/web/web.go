// Package web is the web chat input: it serves a chat page (embedded in the
// binary) and a websocket endpoint on one address. Each browser tab is a
// conversation; the replies go back to the tab that asked.
//
// The page and the server speak JSON frames over the websocket subprotocol
// botmesh.web.v1 (see frame.go). The first frame is a hello carrying the
// session ticket the server issued before (kept by the page in
// sessionStorage), the tab's conversation id and, when --web_token is set,
// the token; the server answers with a welcome. Each message is then
// acknowledged when the gateway has it, and answered with reply frames.
//
// Replies that find no open connection for their conversation (the tab is
// reloading or reconnecting) wait in the conversation's outbox, and are
// sent when the tab comes back.
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
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
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
	sendQueue       = 64               // frames waiting for one slow browser
	recentMax       = 32               // replies a conversation keeps for a tab that comes back…
	recentBytes     = 512 << 10        // …and their bytes at most
	conversationTTL = 10 * time.Minute // how long a conversation with no tab is remembered
	sweepInterval   = time.Minute
)

// Input serves the chat page and its websocket.
type Input struct {
	// Flags.
	address        string
	token          string
	tokenFile      string
	allowAnonymous bool
	origins        string
	maxFrame       int

	// Set by Init.
	log          *slog.Logger
	sess         sessions
	extraOrigins map[string]bool // host[:port] of other allowed Origins
	loopback     bool            // listening on loopback only: check Host

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
	fs.IntVar(&in.maxFrame, "web_max_frame", in.maxFrame, "largest websocket frame taken from a browser, in bytes")
}

// Init implements adapter.Input: it checks the flags and reads the token
// file. It does not listen.
func (in *Input) Init(env adapter.Env) error {
	in.log = env.Log
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
	in.loopback = isLoopback(host)
	if !in.loopback && in.token == "" && !in.allowAnonymous {
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
	in.sess = newSessions(in.token)
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
	if err != nil {
		return fmt.Errorf("web: listen (set --web_address; port 0 picks a free one): %w", err)
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
// recent replies and posts it to the tab that sent the message if that is
// still connected, else to the conversation's other tabs. A tab that is
// away (reloading, reconnecting) gets it when it comes back. Send never
// blocks on a browser.
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
	cv.seq++
	f.Seq = cv.seq
	data, err := encode(f)
	if err != nil {
		return fmt.Errorf("web: encode reply: %w", err)
	}
	cv.keep(cv.seq, data)
	var targets []*conn
	for c := range cv.conns {
		if c.id == connID {
			targets = []*conn{c}
			break
		}
		targets = append(targets, c)
	}
	sent := false
	for _, c := range targets {
		if c.enqueue(data) {
			sent = true
		}
	}
	if !sent {
		in.log.Debug("reply kept until the tab comes back", "conversation", key, "event", ev.GetInReplyTo())
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
// one) and its recent replies, numbered, so that a tab that comes back
// gets those it missed.
type conversation struct {
	conns  map[*conn]struct{}
	epoch  string // changes when the conversation is made anew, resetting seq
	seq    uint64 // number of the last reply
	recent []kept // oldest first
	bytes  int
	idle   time.Time // when the last connection left
}

type kept struct {
	seq  uint64
	data []byte
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

// keep adds a reply to the recent ones, dropping the oldest beyond
// recentMax replies or recentBytes bytes.
func (cv *conversation) keep(seq uint64, data []byte) {
	cv.recent = append(cv.recent, kept{seq: seq, data: data})
	cv.bytes += len(data)
	for len(cv.recent) > 1 && (len(cv.recent) > recentMax || cv.bytes > recentBytes) {
		cv.bytes -= len(cv.recent[0].data)
		cv.recent = cv.recent[1:]
	}
}

// since returns the replies after seq, and whether some between were
// dropped already.
func (cv *conversation) since(seq uint64) (out [][]byte, lost bool) {
	if len(cv.recent) > 0 && cv.recent[0].seq > seq+1 {
		lost = true
	}
	for _, k := range cv.recent {
		if k.seq > seq {
			out = append(out, k.data)
		}
	}
	return out, lost
}
