// Package natsconn connects a botmesh process to NATS: the flags that say
// where the server is and how to prove oneself to it, the search for a
// server on the LAN, and a connection that keeps reconnecting. Parts that
// only speak NATS (gateways, stream processors, botctl) need nothing more;
// package mesh adds go-micro on top of it for the parts that call or serve
// commands. It does not import go-micro, which keeps those parts' binaries
// (and their memory) small.
package natsconn

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/botmesh/botmesh/sdk/lan"
	"github.com/nats-io/nats.go"
)

// Config says where the NATS server is and how to reach it. Start from
// DefaultConfig or RegisterFlags.
type Config struct {
	// NATSURL is the NATS server, or a comma-separated list of the servers
	// of a cluster.
	NATSURL string
	// Name names this process's NATS connections in server monitoring.
	Name string
	// ConnectWait bounds how long Connect waits for NATS to come up; 0
	// means wait until the context ends.
	ConnectWait time.Duration
	// FindNATS looks for the NATS server (--find_nats; off by default):
	// unless NATSURL was changed from the default, Connect uses a server
	// listening on 127.0.0.1:4222, else the first one announced on the
	// LAN with mDNS (package lan), looking until one is found. A server
	// found on the LAN gets the credentials in Auth only if its TLS
	// certificate verifies. boot keeps it only when neither --nats_url nor
	// BOTMESH_NATS_URL was given and LANWait is not 0.
	FindNATS bool
	// LANWait is how long one mDNS query for an announced NATS server
	// waits (DefaultLANWait if 0).
	LANWait time.Duration
	// Auth holds the NATS credentials and TLS settings.
	Auth Auth
	// Announce announces the NATS server this process connects to on the
	// LAN with mDNS, until Close, so that parts started without an address
	// find it. A server reached on loopback is announced with this host's
	// interface addresses.
	Announce bool
}

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{NATSURL: nats.DefaultURL, LANWait: DefaultLANWait}
}

// RegisterFlags adds the NATS flags to fs, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Auth.RegisterFlags(fs)
	fs.StringVar(&c.NATSURL, "nats_url", c.NATSURL, "NATS server URL (comma-separated for a cluster); with --find_nats and no URL given, a server on 127.0.0.1:4222, else one announced on the LAN")
	fs.BoolVar(&c.FindNATS, "find_nats", c.FindNATS, "when --nats_url is not given, look for a NATS server announced on the LAN with mDNS; credentials go to it only if its TLS certificate verifies")
	fs.BoolVar(&c.Announce, "nats_announce", c.Announce, "announce the NATS server on the LAN with mDNS, for parts started with --find_nats")
	fs.DurationVar(&c.LANWait, "nats_lan_wait", c.LANWait, "how long each mDNS query for an announced NATS server waits, with --find_nats (0: do not look on the LAN)")
}

// Validate reports the problems with c, worded for a user.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.NATSURL) == "" && !c.FindNATS {
		errs = append(errs, errors.New("nats_url is empty"))
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Conn is one process's NATS connection, with what Connect set up around
// it (the LAN announcement, the functions told of connection changes).
type Conn struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	opts    nats.Options
	ann     *lan.Announcement
	changes *connChanges
}

// connChanges are the functions called when the NATS connection is lost
// or comes back.
type connChanges struct {
	mu  sync.Mutex
	fns []func()
}

func (c *connChanges) add(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

func (c *connChanges) changed() {
	c.mu.Lock()
	fns := slices.Clone(c.fns)
	c.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// Connect validates cfg and connects to NATS, looking for the server first
// if cfg.FindNATS says so. If NATS is not up yet it keeps trying until ctx
// ends (or cfg.ConnectWait passes), so parts may start in any order; once
// connected, the connection reconnects for ever. Connect and the
// connection's callbacks log to log (nil: nowhere); opts are added to the
// connection's nats.go options (credentials, TLS, callbacks).
func Connect(ctx context.Context, cfg Config, log *slog.Logger, opts ...nats.Option) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wait := ctx
	if cfg.ConnectWait > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, cfg.ConnectWait)
		defer cancel()
	}
	if cfg.FindNATS && cfg.NATSURL == nats.DefaultURL {
		u, auth, err := findNATS(wait, cfg, log)
		if err != nil {
			return nil, err
		}
		cfg.NATSURL, cfg.Auth = u, auth
	}
	nopts, err := natsOptions(cfg, log, opts)
	if err != nil {
		return nil, err
	}
	changes := &connChanges{}
	lost, back := nopts.DisconnectedErrCB, nopts.ReconnectedCB
	nopts.DisconnectedErrCB = func(nc *nats.Conn, err error) {
		if lost != nil {
			lost(nc, err)
		}
		changes.changed()
	}
	nopts.ReconnectedCB = func(nc *nats.Conn) {
		if back != nil {
			back(nc)
		}
		changes.changed()
	}
	connected := make(chan struct{}, 1)
	nopts.ConnectedCB = func(*nats.Conn) {
		select {
		case connected <- struct{}{}:
		default:
		}
	}
	nc, err := nopts.Connect()
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", RedactURL(cfg.NATSURL), err)
	}
	if !nc.IsConnected() {
		log.Info("waiting for NATS", "url", RedactURL(cfg.NATSURL))
		select {
		case <-connected:
		case <-wait.Done():
			nc.Close()
			return nil, fmt.Errorf("NATS at %s did not answer: %w", RedactURL(cfg.NATSURL), context.Cause(wait))
		}
	}
	log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
	c := &Conn{cfg: cfg, log: log, nc: nc, opts: nopts, changes: changes}
	if cfg.Announce {
		if err := c.announce(); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return c, nil
}

// announce announces the server c is connected to on the LAN.
func (c *Conn) announce() error {
	addr := c.nc.ConnectedAddr()
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			// Reached on loopback: the server may listen on other
			// interfaces too, and only they are of use to other hosts.
			addr = net.JoinHostPort("", port)
		}
	}
	a, err := lan.Announce(addr, c.log)
	if err != nil {
		return err
	}
	c.ann = a
	c.log.Info("announcing NATS on the LAN", "urls", a.URLs(), "service", lan.Service)
	return nil
}

func natsOptions(cfg Config, log *slog.Logger, extra []nats.Option) (nats.Options, error) {
	nopts := nats.GetDefaultOptions()
	nopts.Servers = SplitList(cfg.NATSURL)
	nopts.Name = cfg.Name
	nopts.MaxReconnect = -1
	nopts.ReconnectWait = 250 * time.Millisecond
	nopts.RetryOnFailedConnect = true
	nopts.DisconnectedErrCB = func(_ *nats.Conn, err error) {
		if err != nil {
			log.Warn("NATS disconnected", "err", err)
		}
	}
	nopts.ReconnectedCB = func(nc *nats.Conn) {
		log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
	}
	nopts.AsyncErrorCB = func(_ *nats.Conn, sub *nats.Subscription, err error) {
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		log.Error("NATS async error", "subject", subject, "err", err)
	}
	auth, err := cfg.Auth.options()
	if err != nil {
		return nopts, err
	}
	for _, o := range append(auth, extra...) {
		if err := o(&nopts); err != nil {
			return nopts, fmt.Errorf("NATS option: %w", err)
		}
	}
	return nopts, nil
}

// Config returns the configuration the connection was made from, with the
// server and credentials Connect found when it looked for them.
func (c *Conn) Config() Config { return c.cfg }

// NATS returns the connection.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// OnConnectionChange calls f each time the connection is lost or comes
// back, from nats.go's callback goroutine: f must not block. It lets a part
// watch the connection without polling it.
func (c *Conn) OnConnectionChange(f func()) { c.changes.add(f) }

// PluginOptions returns the options of the connection (servers,
// credentials, TLS) without its callbacks and without retrying a failed
// first connect, for libraries that open connections of their own.
func (c *Conn) PluginOptions() nats.Options {
	o := c.opts
	o.ConnectedCB, o.ReconnectedCB, o.DisconnectedErrCB, o.ClosedCB = nil, nil, nil, nil
	o.RetryOnFailedConnect = false
	return o
}

// Close stops announcing NATS on the LAN (if it did) and drains the
// connection, delivering what was published.
func (c *Conn) Close() error {
	if c.ann != nil {
		_ = c.ann.Stop()
	}
	if c.nc.IsClosed() {
		return nil
	}
	err := c.nc.Drain()
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("drain NATS: %w", err)
	}
	return nil
}

// SplitList splits a comma-separated list, trimming spaces and dropping
// empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// RedactURL hides passwords and tokens in NATS URLs before they reach a log
// or an error.
func RedactURL(s string) string {
	parts := SplitList(s)
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			scheme := ""
			if j := strings.Index(p, "://"); j >= 0 && j < at {
				scheme = p[:j+3]
			}
			parts[i] = scheme + "[REDACTED]" + p[at:]
		}
	}
	return strings.Join(parts, ",")
}
