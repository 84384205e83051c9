// Package xmppgw is the XMPP input (mellium.im/xmpp): the bot logs in to an
// XMPP server with a JID and password (StartTLS, SASL SCRAM), answers
// direct messages, and joins multi-user chat rooms where it answers only
// when addressed by its nickname ("botmesh: ping", "@botmesh ping"), as the
// Micro Bot's HipChat input did. Replies go to the same room, or to the
// same user's resource.
//
// The input reconnects with exponential backoff when the connection drops,
// pings the server to notice dead connections (XEP-0199), and rejoins its
// rooms after each reconnect. The Micro Bot's flags --hipchat_username,
// --hipchat_password and --hipchat_server are aliases of --xmpp_jid,
// --xmpp_password and --xmpp_server.
package xmppgw

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/flagenv"
	"github.com/botmesh/botmesh/sdk/secret"
	"mellium.im/xmpp/jid"
)

// Name is the input's name and platform.
const Name = "xmpp"

// Config configures the input; each field is a flag.
type Config struct {
	// JID is the bot's account, user@example.com (--xmpp_jid; alias
	// --hipchat_username).
	JID string
	// Password of the account (--xmpp_password, or the environment
	// variable BOTMESH_XMPP_PASSWORD; alias --hipchat_password). Prefer
	// the environment or PasswordFile: a command line is visible to every
	// user of the machine.
	Password Secret
	// PasswordFile is a file that holds the password (--xmpp_password_file);
	// a trailing newline is ignored.
	PasswordFile string
	// Server is the host[:port] to connect to (--xmpp_server; alias
	// --hipchat_server). Empty: the JID's domain, through its DNS SRV
	// records. The port defaults to 5222.
	Server string
	// Rooms are the multi-user chat rooms to join, as bare room JIDs
	// (--xmpp_rooms, comma-separated: ops@conference.example.com).
	Rooms []string
	// Nick is the bot's nickname in rooms, the word users start a message
	// with to address it there (--xmpp_nick). Empty: the JID's localpart.
	Nick string
	// CAFile is a PEM file of certificate authorities to trust besides the
	// system's (--xmpp_ca_file), for a server with a private or
	// self-signed certificate. Certificates are always verified.
	CAFile string
	// KeepAlive is how often the server is pinged (XEP-0199); a ping
	// without an answer within KeepAlive (at most 30 s) drops the
	// connection, which is then re-established (--xmpp_keepalive).
	KeepAlive time.Duration
	// ReconnectMax is the longest wait between reconnect attempts; waits
	// start at 1 s and double (--xmpp_reconnect_max).
	ReconnectMax time.Duration
	// MaxReplyBytes is the longest reply posted; a longer one is cut with a
	// note (--xmpp_max_reply_bytes). Servers refuse large stanzas and
	// close the stream (Prosody: c2s_stanza_size_limit, 256 KiB).
	MaxReplyBytes int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{KeepAlive: time.Minute, ReconnectMax: time.Minute, MaxReplyBytes: 64 << 10}
}

// Secret is a password: it prints and logs as "[redacted]".
type Secret = secret.Value

// Input is the XMPP input; it is its own Conn.
type Input struct {
	cfg Config
	log *slog.Logger

	// Set by Init.
	self     jid.JID
	password string
	nick     string
	prefix   string // addresses the bot in rooms (--prefix)
	rooms    []jid.JID
	addr     string // host:port to dial; empty: SRV lookup of the domain
	tls      *tls.Config

	events    chan *chatopsv1.Event
	stop      chan struct{}
	stopOnce  sync.Once
	startOnce sync.Once
	startErr  error
	cancel    context.CancelFunc
	done      chan struct{} // closed when the connection loop has ended

	mu   sync.Mutex
	cur  *session      // the connected session; nil while reconnecting
	up   chan struct{} // closed when cur is set; replaced when it is cleared
	gone bool          // Stop was called
}

var (
	_ adapter.Input    = (*Input)(nil)
	_ adapter.Conn     = (*Input)(nil)
	_ adapter.Healther = (*Input)(nil)
)

// New returns an XMPP input with the default config; its flags and Init
// set it up.
func New() adapter.Input { return NewWithConfig(DefaultConfig()) }

// NewWithConfig returns an XMPP input with cfg as its flags' defaults.
func NewWithConfig(cfg Config) *Input {
	return &Input{
		cfg:    cfg,
		log:    slog.New(slog.DiscardHandler),
		events: make(chan *chatopsv1.Event, 256),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		up:     make(chan struct{}),
	}
}

// String implements adapter.Input.
func (in *Input) String() string { return Name }

// SharedConversations reports that a sibling replica can post this input's
// replies (every replica logs in with the same JID and joins the same rooms).
func (in *Input) SharedConversations() bool { return true }

// Flags implements adapter.Input. The --hipchat_* flags are aliases that
// set the same values, so Micro Bot command lines keep working.
func (in *Input) Flags(fs *flag.FlagSet) {
	c := &in.cfg
	fs.StringVar(&c.JID, "xmpp_jid", c.JID, "XMPP account of the bot (user@example.com)")
	fs.StringVar(&c.JID, "hipchat_username", c.JID, "alias of --xmpp_jid (Micro Bot HipChat input)")
	fs.Var(&c.Password, "xmpp_password", "password of the XMPP account (prefer the environment variable or --xmpp_password_file)")
	fs.Var(&c.Password, "hipchat_password", "alias of --xmpp_password (Micro Bot HipChat input)")
	fs.StringVar(&c.PasswordFile, "xmpp_password_file", c.PasswordFile, "file holding the password of the XMPP account")
	fs.StringVar(&c.Server, "xmpp_server", c.Server, "XMPP server host[:port] (default: the JID's domain, found through DNS SRV records)")
	fs.StringVar(&c.Server, "hipchat_server", c.Server, "alias of --xmpp_server (Micro Bot HipChat input)")
	fs.Var(flagenv.List(&c.Rooms), "xmpp_rooms", "comma-separated multi-user chat rooms to join (room@conference.example.com)")
	fs.StringVar(&c.Nick, "xmpp_nick", c.Nick, "nickname in rooms; users address the bot with it (default: the JID's localpart)")
	fs.StringVar(&c.CAFile, "xmpp_ca_file", c.CAFile, "PEM file of certificate authorities to trust besides the system's")
	fs.DurationVar(&c.KeepAlive, "xmpp_keepalive", c.KeepAlive, "how often to ping the server to detect a dead connection")
	fs.DurationVar(&c.ReconnectMax, "xmpp_reconnect_max", c.ReconnectMax, "longest wait between reconnect attempts")
	fs.IntVar(&c.MaxReplyBytes, "xmpp_max_reply_bytes", c.MaxReplyBytes, "longest reply posted, in bytes; longer ones are cut with a note")
}

// Validate checks the config and returns what is wrong, in words for a
// user.
func (c Config) Validate() error {
	var errs []error
	if c.JID == "" {
		errs = append(errs, errors.New("--xmpp_jid (or --hipchat_username) is required"))
	} else if j, err := jid.Parse(c.JID); err != nil || j.Localpart() == "" {
		errs = append(errs, fmt.Errorf("--xmpp_jid %q is not a user@domain address", c.JID))
	}
	switch {
	case c.Password != "" && c.PasswordFile != "":
		errs = append(errs, errors.New("give the password once: --xmpp_password (or its environment variable) or --xmpp_password_file, not both"))
	case c.Password == "" && c.PasswordFile == "":
		errs = append(errs, errors.New("a password is required: set BOTMESH_XMPP_PASSWORD or --xmpp_password_file"))
	}
	for _, r := range c.Rooms {
		if j, err := jid.Parse(r); err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
			errs = append(errs, fmt.Errorf("--xmpp_rooms: %q is not a bare room address (room@conference.example.com)", r))
		}
	}
	if c.KeepAlive < time.Second {
		errs = append(errs, fmt.Errorf("--xmpp_keepalive %s is below 1s", c.KeepAlive))
	}
	if c.ReconnectMax < time.Second {
		errs = append(errs, fmt.Errorf("--xmpp_reconnect_max %s is below 1s", c.ReconnectMax))
	}
	if c.MaxReplyBytes < 64 {
		errs = append(errs, fmt.Errorf("--xmpp_max_reply_bytes %d is below 64", c.MaxReplyBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xmpp: %w", err)
	}
	return nil
}

// Init implements adapter.Input: it checks the flags, reads the password
// and the CA file. It connects nowhere.
func (in *Input) Init(env adapter.Env) error {
	if env.Log != nil {
		in.log = env.Log
	}
	c := in.cfg
	if err := c.Validate(); err != nil {
		return err
	}
	in.self = jid.MustParse(c.JID).Bare()
	in.password = string(c.Password)
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return fmt.Errorf("xmpp: read password file: %w", err)
		}
		in.password = strings.TrimRight(string(b), "\r\n")
		if in.password == "" {
			return fmt.Errorf("xmpp: password file %s is empty", c.PasswordFile)
		}
	}
	in.prefix = env.Prefix
	in.nick = c.Nick
	if in.nick == "" {
		in.nick = in.self.Localpart()
	}
	in.rooms = nil
	for _, r := range c.Rooms {
		in.rooms = append(in.rooms, jid.MustParse(r).Bare())
	}
	if c.Server != "" {
		in.addr = c.Server
		if _, _, err := net.SplitHostPort(c.Server); err != nil {
			in.addr = net.JoinHostPort(c.Server, "5222")
		}
	}
	in.tls = &tls.Config{ServerName: in.self.Domainpart(), MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("xmpp: read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("xmpp: CA file %s holds no PEM certificate", c.CAFile)
		}
		in.tls.RootCAs = pool
	}
	return nil
}

// Start implements adapter.Input: it connects, logs in, sends initial
// presence and joins the rooms. It returns the first attempt's error (a
// wrong password, an unreachable server); later the input reconnects by
// itself. ctx bounds the first attempt only: Stop ends the input.
func (in *Input) Start(ctx context.Context) error {
	in.startOnce.Do(func() {
		if in.self.Localpart() == "" {
			in.startErr = errors.New("xmpp: Start before Init")
			return
		}
		in.mu.Lock()
		if in.gone {
			in.mu.Unlock()
			in.startErr = adapter.ErrClosed
			return
		}
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		in.cancel = cancel
		in.mu.Unlock()
		first := make(chan error, 1)
		go in.run(runCtx, first)
		select {
		case in.startErr = <-first:
		case <-ctx.Done():
			in.startErr = fmt.Errorf("xmpp: connect: %w", ctx.Err())
		}
		if in.startErr != nil {
			cancel()
			<-in.done
		}
	})
	return in.startErr
}

// Stream implements adapter.Input; the input is its own Conn.
func (in *Input) Stream(context.Context) (adapter.Conn, error) { return in, nil }

// Stop implements adapter.Input: it logs out (unavailable presence, end of
// stream) and waits for the connection loop to end, at most until ctx
// ends. Recv returns adapter.ErrClosed from then on.
func (in *Input) Stop(ctx context.Context) error {
	in.mu.Lock()
	in.gone = true
	cancel := in.cancel
	in.mu.Unlock()
	in.stopOnce.Do(func() { close(in.stop) })
	if cancel == nil { // never started
		return nil
	}
	cancel()
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("xmpp: stop: %w", ctx.Err())
	}
}

// Close implements adapter.Conn.
func (in *Input) Close() error { return in.Stop(context.Background()) }

// Healthy implements adapter.Healther.
func (in *Input) Healthy() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cur == nil {
		return errors.New("xmpp: not connected")
	}
	return nil
}

// Recv implements adapter.Conn.
func (in *Input) Recv(ctx context.Context) (*chatopsv1.Event, error) {
	select {
	case ev := <-in.events:
		return ev, nil
	case <-in.stop:
		return nil, adapter.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Send implements adapter.Conn: it posts the reply to the room (naming
// the asker: "alice: pong") or user the message came from. While the input
// reconnects, Send waits for the new connection (and the rooms rejoined)
// until ctx ends.
func (in *Input) Send(ctx context.Context, ev *chatopsv1.Event) error {
	to := ev.GetMeta()[MetaReplyTo]
	if to == "" {
		to = ev.GetTo()
	}
	dest, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("xmpp: reply to %q: %w", to, err)
	}
	typ := ev.GetMeta()[MetaType]
	if typ != "groupchat" {
		typ = "chat"
	}
	text := string(ev.GetData())
	if typ == "groupchat" && ev.GetMeta()[adapter.MetaRoom] == "true" {
		text = adapter.NameAsker(ev.GetMeta()[MetaNick], text)
	}
	body := cut(text, in.cfg.MaxReplyBytes)
	for {
		s, err := in.session(ctx)
		if err != nil {
			return fmt.Errorf("xmpp: reply to %s: %w", dest, err)
		}
		err = s.say(ctx, dest, typ, ev.GetThread(), body)
		if err == nil {
			in.log.Debug("reply posted", "to", dest.String(), "event", ev.GetInReplyTo(), "bytes", len(body))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("xmpp: reply to %s: %w", dest, err)
		}
		// The connection broke under the write: drop it and try again on
		// the next one.
		in.log.Warn("reply not sent; reconnecting", "to", dest.String(), "err", err)
		s.abort()
		in.clear(s)
	}
}

// session returns the connected session, waiting for one while the input
// reconnects.
func (in *Input) session(ctx context.Context) (*session, error) {
	for {
		in.mu.Lock()
		s, up, gone := in.cur, in.up, in.gone
		in.mu.Unlock()
		if gone {
			return nil, adapter.ErrClosed
		}
		if s != nil {
			return s, nil
		}
		select {
		case <-up:
		case <-in.stop:
			return nil, adapter.ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("not connected: %w", ctx.Err())
		}
	}
}

func (in *Input) publish(s *session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.cur = s
	close(in.up)
}

// clear forgets s if it is the connected session.
func (in *Input) clear(s *session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cur == s && s != nil {
		in.cur = nil
		in.up = make(chan struct{})
	}
}

// emit hands an event to Recv, waiting while the gateway is busy.
func (in *Input) emit(ev *chatopsv1.Event) {
	select {
	case in.events <- ev:
	case <-in.stop:
	}
}

// run connects and keeps the input connected until ctx ends. The first
// attempt's result goes to first.
func (in *Input) run(ctx context.Context, first chan<- error) {
	defer close(in.done)
	adapter.Backoff{Initial: time.Second, Max: in.cfg.ReconnectMax}.Run(ctx, in.log, first, func(ctx context.Context) (func(context.Context) error, error) {
		began := time.Now()
		s, err := in.connect(ctx)
		if err != nil {
			return nil, err
		}
		in.log.Info("connected", "jid", s.addr.String(), "server", s.remote, "rooms", len(in.rooms), "took", time.Since(began).Round(time.Millisecond))
		return func(ctx context.Context) error {
			in.publish(s)
			defer in.clear(s)
			return s.serve(ctx)
		}, nil
	})
}

// cut shortens text to at most max bytes (on a UTF-8 boundary), ending
// with a note of what was cut.
func cut(text string, max int) string {
	if text == "" {
		return "(empty reply)"
	}
	if len(text) <= max {
		return text
	}
	note := fmt.Sprintf("\n… [cut: %d bytes not shown]", len(text))
	keep := max - len(note)
	for keep > 0 && keep < len(text) && !isRuneStart(text[keep]) {
		keep--
	}
	kept := text[:keep]
	return kept + fmt.Sprintf("\n… [cut: %d bytes not shown]", len(text)-len(kept))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
