// Package ircgw is the IRC input (github.com/ergochat/irc-go): the bot
// connects to a server (TLS and SASL optional), joins channels, and answers
// in a channel when addressed (adapter.Addressing: "botmesh: ping",
// "botmesh, ping", "@botmesh ping" or the prefix, "!ping") and in private
// messages.
//
// Replies are split into lines that fit IRC's 512-byte limit as the server
// relays them, and sent through one paced queue per connection so that the
// server's flood control never disconnects the bot: a burst of
// --irc_send_burst lines, then one line per --irc_send_interval. Replies
// longer than --irc_max_lines are cut with a note. Lines queued while the
// bot reconnects are sent once it is back in its channels.
//
// The input reconnects with exponential backoff, rejoins its channels,
// pings the server (--irc_keepalive) to notice a dead connection, and when
// its nick is taken uses nick_0, nick_1…, regaining its own nick when it is
// free again.
package ircgw

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
)

// Name is the input's name and platform.
const Name = "irc"

// Config configures the input; each field is a flag.
type Config struct {
	// Server is the IRC server, host:port (--irc_server).
	Server string
	// TLS connects with TLS (--irc_tls); the certificate is always
	// verified.
	TLS bool
	// CAFile is a PEM file of certificate authorities to trust besides the
	// system's (--irc_ca_file).
	CAFile string
	// Nick is the bot's nick, which users write first to address it in a
	// channel (--irc_nick).
	Nick string
	// Channels to join (--irc_channels, comma-separated: #ops,#dev).
	Channels []string
	// Prefix also addresses the bot in a channel when a message starts
	// with it ("!ping"); empty turns it off. Init sets it from --prefix,
	// which all inputs share, unless --irc_prefix (its old name, for IRC
	// only) is given.
	Prefix string
	// SASLUser logs in to the network's account with SASL PLAIN
	// (--irc_sasl_user); use it with TLS.
	SASLUser string
	// SASLPassword is the SASL password (--irc_sasl_password, or the
	// environment variable BOTMESH_IRC_SASL_PASSWORD).
	SASLPassword Secret
	// SASLPasswordFile is a file that holds the SASL password
	// (--irc_sasl_password_file); a trailing newline is ignored.
	SASLPasswordFile string
	// KeepAlive is how often the server is pinged; a ping unanswered
	// within Timeout drops the connection (--irc_keepalive).
	KeepAlive time.Duration
	// Timeout bounds connecting, registering and waiting for a ping's
	// answer (--irc_timeout). At most KeepAlive.
	Timeout time.Duration
	// ReconnectMax is the longest wait between reconnect attempts; waits
	// start at 1 s and double (--irc_reconnect_max).
	ReconnectMax time.Duration
	// SendBurst is how many lines are sent at once before pacing starts
	// (--irc_send_burst).
	SendBurst int
	// SendInterval is the pace of lines after the burst
	// (--irc_send_interval). Measured: inspircd's default connect class
	// (threshold 10, recvq 8192) runs 1 line per second after a burst of
	// 10 and disconnects a client whose unprocessed lines pass 8 KiB;
	// ngircd 26 runs 3 lines and about 1000 bytes per second and queues
	// the rest. 1 line per second after 5 is safe on both.
	SendInterval time.Duration
	// MaxLines is the most lines one reply may take; a longer reply is cut
	// with a note (--irc_max_lines).
	MaxLines int
	// ChannelLines is the most lines of an answer posted in a channel: a
	// longer one goes to the asker in a private message, and one line in
	// the channel says so, rather than flooding the channel for seconds at
	// the paced rate (--irc_channel_lines; 0: every answer in the channel).
	ChannelLines int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Nick:         "botmesh",
		Prefix:       adapter.DefaultPrefix,
		KeepAlive:    time.Minute,
		Timeout:      30 * time.Second,
		ReconnectMax: time.Minute,
		SendBurst:    5,
		SendInterval: time.Second,
		MaxLines:     60,
		ChannelLines: 4,
	}
}

// Secret is a password: it prints and logs as "[redacted]".
type Secret = secret.Value

// Input is the IRC input; it is its own Conn.
type Input struct {
	cfg Config
	log *slog.Logger
	// ownPrefix: --irc_prefix was given, and wins over --prefix.
	ownPrefix bool

	// Set by Init.
	password string
	tls      *tls.Config

	events    chan *chatopsv1.Event
	pastes    *pastes // messages split by the client, being joined
	out       *outbox
	stop      chan struct{}
	stopOnce  sync.Once
	startOnce sync.Once
	startErr  error
	done      chan struct{} // closed when the connection loop and the sender have ended

	mu     sync.Mutex
	cancel context.CancelFunc
	gone   bool
	link   *link // the registered connection; nil while reconnecting
	change chan struct{}
}

var (
	_ adapter.Input    = (*Input)(nil)
	_ adapter.Conn     = (*Input)(nil)
	_ adapter.Healther = (*Input)(nil)
)

// New returns an IRC input with the default config; its flags and Init set
// it up.
func New() adapter.Input { return NewWithConfig(DefaultConfig()) }

// NewWithConfig returns an IRC input with cfg as its flags' defaults.
func NewWithConfig(cfg Config) *Input {
	in := &Input{
		cfg:    cfg,
		log:    slog.New(slog.DiscardHandler),
		events: make(chan *chatopsv1.Event, 256),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		change: make(chan struct{}),
	}
	in.pastes = newPastes(in.emit)
	return in
}

// String implements adapter.Input.
func (in *Input) String() string { return Name }

// SharedConversations reports that a sibling replica can post this input's
// replies (every replica joins the same channels; a private reply comes from its nick).
func (in *Input) SharedConversations() bool { return true }

// Flags implements adapter.Input.
func (in *Input) Flags(fs *flag.FlagSet) {
	c := &in.cfg
	fs.StringVar(&c.Server, "irc_server", c.Server, "IRC server host:port")
	fs.BoolVar(&c.TLS, "irc_tls", c.TLS, "connect to the IRC server with TLS")
	fs.StringVar(&c.CAFile, "irc_ca_file", c.CAFile, "PEM file of certificate authorities to trust besides the system's")
	fs.StringVar(&c.Nick, "irc_nick", c.Nick, "nick of the bot; users address it with \"nick: command\" in channels")
	fs.Var(flagenv.List(&c.Channels), "irc_channels", "comma-separated channels to join (#ops,#dev)")
	fs.Func("irc_prefix", "IRC only, instead of --prefix: a channel message starting with this is a command for the bot (empty: off)", func(v string) error {
		c.Prefix, in.ownPrefix = v, true
		return nil
	})
	fs.StringVar(&c.SASLUser, "irc_sasl_user", c.SASLUser, "account to log in to with SASL PLAIN (use with --irc_tls)")
	fs.Var(&c.SASLPassword, "irc_sasl_password", "SASL password (prefer the environment variable or --irc_sasl_password_file)")
	fs.StringVar(&c.SASLPasswordFile, "irc_sasl_password_file", c.SASLPasswordFile, "file holding the SASL password")
	fs.DurationVar(&c.KeepAlive, "irc_keepalive", c.KeepAlive, "how often to ping the server to detect a dead connection")
	fs.DurationVar(&c.Timeout, "irc_timeout", c.Timeout, "limit for connecting, registering and a ping's answer")
	fs.DurationVar(&c.ReconnectMax, "irc_reconnect_max", c.ReconnectMax, "longest wait between reconnect attempts")
	fs.IntVar(&c.SendBurst, "irc_send_burst", c.SendBurst, "lines sent at once before pacing starts")
	fs.DurationVar(&c.SendInterval, "irc_send_interval", c.SendInterval, "time between lines after the burst, so that flood control does not disconnect the bot")
	fs.IntVar(&c.MaxLines, "irc_max_lines", c.MaxLines, "most lines one reply may take; longer replies are cut with a note")
	fs.IntVar(&c.ChannelLines, "irc_channel_lines", c.ChannelLines, "most lines of an answer posted in a channel; a longer one goes to the asker in a private message, with a note in the channel (0: all in the channel)")
}

// Validate checks the config and returns what is wrong, in words for a
// user.
func (c Config) Validate() error {
	var errs []error
	if c.Server == "" {
		errs = append(errs, errors.New("--irc_server is required (host:port)"))
	} else if _, _, err := net.SplitHostPort(c.Server); err != nil {
		errs = append(errs, fmt.Errorf("--irc_server %q is not host:port", c.Server))
	}
	if c.Nick == "" || strings.ContainsAny(c.Nick, " ,*?!@:#&\x00\r\n") {
		errs = append(errs, fmt.Errorf("--irc_nick %q is not a valid nick", c.Nick))
	}
	for _, ch := range c.Channels {
		if !isChannel(ch, "#&") || strings.ContainsAny(ch, " ,\x07\x00\r\n") {
			errs = append(errs, fmt.Errorf("--irc_channels: %q is not a channel name (#name)", ch))
		}
	}
	if strings.ContainsAny(c.Prefix, " \r\n\x00") {
		errs = append(errs, fmt.Errorf("--irc_prefix %q contains white space", c.Prefix))
	}
	switch {
	case c.SASLPassword != "" && c.SASLPasswordFile != "":
		errs = append(errs, errors.New("give the SASL password once: --irc_sasl_password (or its environment variable) or --irc_sasl_password_file, not both"))
	case c.SASLUser != "" && c.SASLPassword == "" && c.SASLPasswordFile == "":
		errs = append(errs, errors.New("--irc_sasl_user needs a password: set BOTMESH_IRC_SASL_PASSWORD or --irc_sasl_password_file"))
	case c.SASLUser == "" && (c.SASLPassword != "" || c.SASLPasswordFile != ""):
		errs = append(errs, errors.New("a SASL password without --irc_sasl_user"))
	}
	if c.Timeout < time.Second || c.KeepAlive < c.Timeout {
		errs = append(errs, fmt.Errorf("--irc_timeout %s must be at least 1s and at most --irc_keepalive %s", c.Timeout, c.KeepAlive))
	}
	if c.ReconnectMax < time.Second {
		errs = append(errs, fmt.Errorf("--irc_reconnect_max %s is below 1s", c.ReconnectMax))
	}
	if c.SendBurst < 1 || c.SendInterval < 0 {
		errs = append(errs, fmt.Errorf("--irc_send_burst %d must be at least 1 and --irc_send_interval %s not negative", c.SendBurst, c.SendInterval))
	}
	if c.MaxLines < 2 {
		errs = append(errs, fmt.Errorf("--irc_max_lines %d is below 2", c.MaxLines))
	}
	if c.ChannelLines < 0 {
		errs = append(errs, fmt.Errorf("--irc_channel_lines %d is negative", c.ChannelLines))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("irc: %w", err)
	}
	return nil
}

// Init implements adapter.Input: it checks the flags and reads the
// password and CA files. It connects nowhere.
func (in *Input) Init(env adapter.Env) error {
	if env.Log != nil {
		in.log = env.Log
	}
	if !in.ownPrefix {
		in.cfg.Prefix = env.Prefix
	}
	c := in.cfg
	if err := c.Validate(); err != nil {
		return err
	}
	in.password = string(c.SASLPassword)
	if c.SASLPasswordFile != "" {
		b, err := os.ReadFile(c.SASLPasswordFile)
		if err != nil {
			return fmt.Errorf("irc: read SASL password file: %w", err)
		}
		in.password = strings.TrimRight(string(b), "\r\n")
		if in.password == "" {
			return fmt.Errorf("irc: SASL password file %s is empty", c.SASLPasswordFile)
		}
	}
	host, _, _ := net.SplitHostPort(c.Server)
	in.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("irc: read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("irc: CA file %s holds no PEM certificate", c.CAFile)
		}
		in.tls.RootCAs = pool
	}
	in.out = newOutbox(c.SendBurst, c.SendInterval)
	return nil
}

// Start implements adapter.Input: it connects and registers, then joins
// the channels. It returns the first attempt's error (an unreachable
// server, a refused SASL login); later the input reconnects by itself.
// ctx bounds the first attempt only: Stop ends the input.
func (in *Input) Start(ctx context.Context) error {
	in.startOnce.Do(func() {
		if in.out == nil {
			in.startErr = errors.New("irc: Start before Init")
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
		loopDone, sendDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(loopDone)
			in.run(runCtx, first)
		}()
		go func() {
			defer close(sendDone)
			in.send(runCtx)
		}()
		go func() {
			<-loopDone
			<-sendDone
			close(in.done)
		}()
		select {
		case in.startErr = <-first:
		case <-ctx.Done():
			in.startErr = fmt.Errorf("irc: connect: %w", ctx.Err())
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

// Stop implements adapter.Input: it gives queued reply lines until ctx's
// deadline (at most 5 s) to go out, quits, and waits for the connection to
// close, at most until ctx ends. Recv returns adapter.ErrClosed from then
// on.
func (in *Input) Stop(ctx context.Context) error {
	in.mu.Lock()
	in.gone = true
	cancel := in.cancel
	in.mu.Unlock()
	in.stopOnce.Do(func() { close(in.stop) })
	if n := in.pastes.drop(); n > 0 {
		in.log.Warn("split messages dropped at stop, before their last piece came", "messages", n)
	}
	if cancel == nil { // never started
		return nil
	}
	flush := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		flush = min(flush, time.Until(d)/2)
	}
	if n := in.out.drain(ctx, flush); n > 0 {
		in.log.Warn("reply lines dropped at stop", "lines", n)
	}
	cancel()
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("irc: stop: %w", ctx.Err())
	}
}

// Close implements adapter.Conn.
func (in *Input) Close() error { return in.Stop(context.Background()) }

// Healthy implements adapter.Healther.
func (in *Input) Healthy() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.link == nil {
		return errors.New("irc: not connected")
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

// Send implements adapter.Conn: it queues the reply's lines for the
// channel or nick the message came from (in a channel, naming the asker:
// "alice: pong") and returns; the sender posts them
// at the paced rate, after a reconnect if need be. It fails only when the
// queue is full or the input stopped.
func (in *Input) Send(_ context.Context, ev *chatopsv1.Event) error {
	target := ev.GetMeta()[MetaTarget]
	if target == "" {
		target = ev.GetTo()
	}
	if target == "" || strings.ContainsAny(target, " ,\x00\r\n") {
		return fmt.Errorf("irc: reply to %q: not a channel or nick", target)
	}
	select {
	case <-in.stop:
		return adapter.ErrClosed
	default:
	}
	limit := in.budget(target)
	text := string(ev.GetData())
	if len(splitReply(text, limit)) == 0 {
		text = "(empty reply)"
	}
	nick := ev.GetMeta()[MetaNick]
	room := ev.GetMeta()[adapter.MetaRoom] == "true"
	if room && nick != "" && !strings.ContainsAny(nick, " ,\x00\r\n") && in.cfg.ChannelLines > 0 {
		if private := splitReply(text, in.budget(nick)); len(private) > in.cfg.ChannelLines {
			// A long answer in a channel floods it for seconds (1 line
			// a second after the burst): it goes to the asker.
			private = cutLines(private, in.cfg.MaxLines)
			note := adapter.NameAsker(nick, fmt.Sprintf("sent you the %d lines in a private message", len(private)))
			if err := in.out.add(batch{target, []string{note}}, batch{nick, private}); err != nil {
				return fmt.Errorf("irc: reply to %s: %w", nick, err)
			}
			in.log.Debug("reply queued in private", "channel", target, "nick", nick, "event", ev.GetInReplyTo(), "lines", len(private))
			return nil
		}
	}
	if room {
		text = adapter.NameAsker(nick, text)
	}
	lines := cutLines(splitReply(text, limit), in.cfg.MaxLines)
	if err := in.out.add(batch{target, lines}); err != nil {
		return fmt.Errorf("irc: reply to %s: %w", target, err)
	}
	in.log.Debug("reply queued", "target", target, "event", ev.GetInReplyTo(), "lines", len(lines))
	return nil
}

// budget is how many bytes of text fit in one line to target.
func (in *Input) budget(target string) int {
	if l, _ := in.current(); l != nil {
		return l.budget(target)
	}
	return budget(in.cfg.Nick+"_99", "", target) // a fallback nick is longer
}

// emit hands an event to Recv, waiting while the gateway is busy.
func (in *Input) emit(ev *chatopsv1.Event) {
	select {
	case in.events <- ev:
	case <-in.stop:
	}
}

// current returns the registered connection and a channel closed at its
// next change.
func (in *Input) current() (*link, chan struct{}) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.link, in.change
}

// setLink records the registered connection (nil: none) and wakes the
// sender.
func (in *Input) setLink(l *link) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.link = l
	in.changed()
}

// changed wakes whoever waits on in.change; in.mu is held.
func (in *Input) changed() {
	close(in.change)
	in.change = make(chan struct{})
}
