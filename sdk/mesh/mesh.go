// Package mesh connects a botmesh process to the mesh: the NATS connection
// that carries chat events, and the go-micro registry and transport that
// carry command RPCs. Every botmesh binary builds one Mesh from a Config and
// passes it to the parts it runs; nothing here touches go-micro's global
// defaults.
package mesh

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
	"github.com/botmesh/botmesh/sdk/natstransport"
	etcdreg "github.com/go-micro/plugins/v4/registry/etcd"
	natsreg "github.com/go-micro/plugins/v4/registry/nats"
	natstr "github.com/go-micro/plugins/v4/transport/nats"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"
	"go.uber.org/zap"
)

// DefaultNamespace is the registry prefix of command services, as in the
// Micro Bot: the service go.micro.bot.echo serves the command echo.
const DefaultNamespace = "go.micro.bot"

// Registry and transport names accepted by Config.
const (
	RegistryNATS   = "nats"
	RegistryMDNS   = "mdns"
	RegistryEtcd   = "etcd"
	RegistryMemory = "memory"

	TransportNATS       = "nats"
	TransportNATSPlugin = "nats-plugin"
	TransportHTTP       = "http"
)

// Config says how to reach the mesh. The zero value is not valid; start from
// DefaultConfig or RegisterFlags.
type Config struct {
	// NATSURL is the NATS server, or a comma-separated list of the servers
	// of a cluster.
	NATSURL string
	// Registry is the go-micro registry that command services register in:
	// "nats" (default: works wherever NATS does, across hosts and
	// containers), "mdns" (zero-conf on one LAN; needs multicast and the
	// http transport), "etcd" (go-micro's etcd registry plugin, at
	// RegistryAddress) or "memory" (one process only). botmesh's own
	// services register there too.
	Registry string
	// RegistryAddress is the registry's address when it is not NATSURL:
	// for etcd, its client endpoints, host:port (or http://host:port),
	// comma-separated (default 127.0.0.1:2379).
	RegistryAddress string
	// Transport carries command RPCs: "nats" (default: no ports to open,
	// measured at half the CPU of http and without its rare 5 s stalls),
	// "nats-plugin" (the same wire protocol through go-micro's NATS
	// transport plugin, which opens a NATS connection per pooled client
	// connection and costs more CPU per call; see BENCHMARKS.md) or "http"
	// (go-micro's default, for services that only speak it).
	Transport string
	// ServerAddress is where command services listen with the http
	// transport: host:port, or host:first-last for the first free port of
	// a range (see ParseListenAddress). Ignored by the nats transport.
	ServerAddress string
	// Namespace is the registry prefix that makes a service a command.
	Namespace string
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
	return Config{
		NATSURL:       nats.DefaultURL,
		Registry:      RegistryNATS,
		Transport:     TransportNATS,
		ServerAddress: "127.0.0.1:0",
		Namespace:     DefaultNamespace,
		LANWait:       DefaultLANWait,
	}
}

// RegisterFlags adds the mesh flags to fs, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.RegisterNATSFlags(fs)
	c.RegisterMicroFlags(fs)
}

// RegisterNATSFlags adds only the NATS flags, for parts that never speak
// go-micro (gateways).
func (c *Config) RegisterNATSFlags(fs *flag.FlagSet) {
	c.Auth.RegisterFlags(fs)
	fs.StringVar(&c.NATSURL, "nats_url", c.NATSURL, "NATS server URL (comma-separated for a cluster); with --find_nats and no URL given, a server on 127.0.0.1:4222, else one announced on the LAN")
	fs.BoolVar(&c.FindNATS, "find_nats", c.FindNATS, "when --nats_url is not given, look for a NATS server announced on the LAN with mDNS; credentials go to it only if its TLS certificate verifies")
	fs.BoolVar(&c.Announce, "nats_announce", c.Announce, "announce the NATS server on the LAN with mDNS, for parts started with --find_nats")
	fs.DurationVar(&c.LANWait, "nats_lan_wait", c.LANWait, "how long each mDNS query for an announced NATS server waits, with --find_nats (0: do not look on the LAN)")
}

// RegisterMicroFlags adds the go-micro flags: registry, transport, namespace.
func (c *Config) RegisterMicroFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Registry, "registry", c.Registry, "go-micro registry: nats, mdns (with --transport http), etcd or memory")
	fs.StringVar(&c.RegistryAddress, "registry_address", c.RegistryAddress, "registry address (default: the NATS URL for the nats registry; 127.0.0.1:2379 for etcd, comma-separated endpoints)")
	fs.StringVar(&c.Transport, "transport", c.Transport, "go-micro transport for command RPCs: nats, nats-plugin (same protocol, go-micro's plugin) or http")
	fs.StringVar(&c.ServerAddress, "server_address", c.ServerAddress, "listen address of command services with the http transport: host:port, or host:first-last for the first free port of a range")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "registry namespace of command services, e.g. com.example.bot")
}

// Validate reports the first problem with c, worded for a user.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.NATSURL) == "" && !c.FindNATS {
		errs = append(errs, errors.New("nats_url is empty"))
	}
	switch c.Registry {
	case RegistryNATS, RegistryMDNS, RegistryMemory:
	case RegistryEtcd:
		if _, err := etcdEndpoints(c.RegistryAddress); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("registry %q is not one of nats, mdns, etcd, memory", c.Registry))
	}
	switch c.Transport {
	case TransportNATS, TransportNATSPlugin:
	case TransportHTTP:
		if _, err := ParseListenAddress(c.ServerAddress); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("transport %q is not one of nats, nats-plugin, http", c.Transport))
	}
	if c.Registry == RegistryMDNS && c.Transport != TransportHTTP {
		// go-micro's mdns registry announces host:port; a NATS node's
		// address is an inbox subject, which it refuses to register.
		errs = append(errs, fmt.Errorf("the mdns registry needs the http transport (it registers host:port addresses, which NATS nodes do not have): add --transport http"))
	}
	if c.Namespace == "" || strings.HasSuffix(c.Namespace, ".") {
		errs = append(errs, fmt.Errorf("namespace %q must be non-empty and not end with a dot", c.Namespace))
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Mesh is one process's connection to the mesh. Its registry and transport
// are shared by every server and client the process builds from it.
type Mesh struct {
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn
	reg  registry.Registry
	tr   transport.Transport
	brk  broker.Broker
	mlog logger.Logger
	ann  *lan.Announcement

	others      callers             // for nodes on another transport than tr
	perNodeOpts []client.CallOption // the last options of every call (perNodeClient)
	changes     *connChanges        // OnConnectionChange's functions
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

// OnConnectionChange calls f each time the mesh's NATS connection is lost
// or comes back, from nats.go's callback goroutine: f must not block. It
// lets a part watch the connection without polling it.
func (m *Mesh) OnConnectionChange(f func()) { m.changes.add(f) }

// Option configures Connect.
type Option func(*options) error

type options struct {
	log   *slog.Logger
	nopts []nats.Option
	reg   registry.Registry
}

// WithLogger sets the logger of the mesh and of the go-micro parts built
// from it.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("mesh: nil logger")
		}
		o.log = l
		return nil
	}
}

// WithNATSOptions adds nats.go options to every NATS connection the mesh
// opens (credentials, TLS).
func WithNATSOptions(opts ...nats.Option) Option {
	return func(o *options) error {
		o.nopts = append(o.nopts, opts...)
		return nil
	}
}

// WithRegistry uses r instead of the registry the config names (tests that
// share one memory registry between meshes).
func WithRegistry(r registry.Registry) Option {
	return func(o *options) error {
		o.reg = r
		return nil
	}
}

// Connect validates cfg, connects to NATS and builds the registry and
// transport. If NATS is not up yet it keeps trying until ctx ends (or
// cfg.ConnectWait passes), so parts may start in any order.
func Connect(ctx context.Context, cfg Config, opts ...Option) (*Mesh, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	log := o.log
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
	nopts, err := natsOptions(cfg, log, o.nopts)
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
		return nil, fmt.Errorf("mesh: connect to NATS at %s: %w", redactURL(cfg.NATSURL), err)
	}
	if !nc.IsConnected() {
		log.Info("waiting for NATS", "url", redactURL(cfg.NATSURL))
		select {
		case <-connected:
		case <-wait.Done():
			nc.Close()
			return nil, fmt.Errorf("mesh: NATS at %s did not answer: %w", redactURL(cfg.NATSURL), context.Cause(wait))
		}
	}
	log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())

	m := &Mesh{cfg: cfg, log: log, nc: nc, brk: broker.NewMemoryBroker(), mlog: NewMicroLogger(log.With("component", "go-micro")), changes: changes}
	// The go-micro plugins open their own connections: give them the same
	// servers and credentials, without our callbacks.
	pluginOpts := nopts
	pluginOpts.ConnectedCB, pluginOpts.ReconnectedCB, pluginOpts.DisconnectedErrCB, pluginOpts.ClosedCB = nil, nil, nil, nil
	pluginOpts.RetryOnFailedConnect = false

	switch {
	case o.reg != nil:
		m.reg = o.reg
	case cfg.Registry == RegistryNATS:
		addrs := pluginAddrs(pluginOpts.Servers)
		if cfg.RegistryAddress != "" {
			addrs = pluginAddrs(splitList(cfg.RegistryAddress))
		}
		m.reg = natsreg.NewRegistry(natsreg.Options(pluginOpts), registry.Addrs(addrs...), registry.Logger(m.mlog))
	case cfg.Registry == RegistryEtcd:
		endpoints, _ := etcdEndpoints(cfg.RegistryAddress) // validated
		// The etcd client logs with zap (JSON on stderr, at info): only
		// its errors.
		zlog := zap.NewProductionConfig()
		zlog.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
		m.reg = etcdreg.NewRegistry(registry.Addrs(endpoints...), registry.Timeout(5*time.Second),
			registry.Logger(m.mlog), etcdreg.LogConfig(&zlog))
	case cfg.Registry == RegistryMDNS:
		var ropts []registry.Option
		if cfg.RegistryAddress != "" {
			ropts = append(ropts, registry.Addrs(splitList(cfg.RegistryAddress)...))
		}
		m.reg = registry.NewRegistry(append(ropts, registry.Logger(m.mlog))...)
	default:
		m.reg = registry.NewMemoryRegistry(registry.Logger(m.mlog))
	}
	m.perNodeOpts = []client.CallOption{client.WithSelectOption(selector.WithFilter(m.callable)), client.WithCallWrapper(m.perNode)}
	switch cfg.Transport {
	case TransportNATS:
		// The process's own connection: the writes of concurrent calls
		// share syscalls, and there is no connection to open per call.
		m.tr = natstransport.New(nc, transport.Logger(m.mlog))
	case TransportNATSPlugin:
		m.tr = natstr.NewTransport(natstr.Options(pluginOpts), transport.Addrs(pluginAddrs(pluginOpts.Servers)...))
	default:
		m.tr = portRanges{transport.NewHTTPTransport(transport.Logger(m.mlog))}
	}
	if cfg.Announce {
		if err := m.announce(); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return m, nil
}

// announce announces the server m is connected to on the LAN.
func (m *Mesh) announce() error {
	addr := m.nc.ConnectedAddr()
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			// Reached on loopback: the server may listen on other
			// interfaces too, and only they are of use to other hosts.
			addr = net.JoinHostPort("", port)
		}
	}
	a, err := lan.Announce(addr, m.log)
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	m.ann = a
	m.log.Info("announcing NATS on the LAN", "urls", a.URLs(), "service", lan.Service)
	return nil
}

func natsOptions(cfg Config, log *slog.Logger, extra []nats.Option) (nats.Options, error) {
	nopts := nats.GetDefaultOptions()
	nopts.Servers = splitList(cfg.NATSURL)
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
		return nopts, fmt.Errorf("mesh: %w", err)
	}
	for _, o := range append(auth, extra...) {
		if err := o(&nopts); err != nil {
			return nopts, fmt.Errorf("mesh: NATS option: %w", err)
		}
	}
	return nopts, nil
}

// Config returns the configuration the mesh was built from.
func (m *Mesh) Config() Config { return m.cfg }

// Logger returns the mesh's logger.
func (m *Mesh) Logger() *slog.Logger { return m.log }

// NATS returns the connection that carries chat events.
func (m *Mesh) NATS() *nats.Conn { return m.nc }

// Registry returns the go-micro registry.
func (m *Mesh) Registry() registry.Registry { return m.reg }

// Transport returns the go-micro transport.
func (m *Mesh) Transport() transport.Transport { return m.tr }

// Namespace returns the registry prefix of command services.
func (m *Mesh) Namespace() string { return m.cfg.Namespace }

// ServiceName returns the registry name of the command service called
// command: "echo" becomes "go.micro.bot.echo".
func (m *Mesh) ServiceName(command string) string { return m.cfg.Namespace + "." + command }

// NewServer returns a go-micro server named name on the mesh's registry and
// transport, with its own node id. opts come last and win.
func (m *Mesh) NewServer(name string, opts ...server.Option) server.Server {
	base := []server.Option{
		server.Name(name),
		server.Id(uuid.NewString()),
		server.Registry(m.reg),
		server.Transport(m.tr),
		server.Broker(m.brk),
		server.WithLogger(m.mlog),
		// Stop waits until the responses of requests in flight are sent.
		// (go-micro calls WaitGroup.Wait there while a request arriving at
		// that moment may Add: command.Service deregisters and drains its
		// handlers first, so that none does.)
		server.Wait(nil),
	}
	if m.cfg.Transport == TransportHTTP {
		base = append(base, server.Address(m.cfg.ServerAddress))
	}
	if _, ok := m.tr.(*natstransport.Transport); ok {
		// Its callers may send a request again after a NATS failure:
		// it is answered once (natstransport.ReplayMetadata).
		base = append(base, server.Metadata(map[string]string{natstransport.ReplayMetadata: "1"}))
	}
	return server.NewServer(append(base, opts...)...)
}

// NewClient returns a go-micro client on the mesh's registry and transport.
// It calls each node over the transport the node serves over (its registry
// metadata says): http nodes over go-micro's http transport, NATS nodes
// (this transport or go-micro's NATS plugin) over NATS, whatever the mesh's
// own transport; a node on another transport fails at once with a
// *TransportError (CanCall). Unless opts set another, its selector reads the mesh's registry through
// go-micro's cache. Requests are encoded as protobuf, not go-micro v4's
// default JSON: protobuf ignores fields a service does not know, which is
// what lets a Micro Bot service (which knows only ExecRequest.args) take a
// botmesh request, and it is cheaper. opts come last and win.
func (m *Mesh) NewClient(opts ...client.Option) client.Client {
	base := []client.Option{
		client.ContentType("application/protobuf"),
		client.Selector(selector.NewSelector(selector.Registry(m.reg))),
		client.Registry(m.reg),
		client.Transport(m.tr),
		client.Broker(m.brk),
		client.WithLogger(m.mlog),
	}
	if tr, ok := m.tr.(*natstransport.Transport); ok {
		return perNodeClient{natstransport.NewClient(tr, append(base, opts...)...), m}
	}
	return perNodeClient{client.NewClient(append(append(base, noHTTPPool), opts...)...), m}
}

// noHTTPPool makes go-micro's client dial a connection for each call
// instead of reusing pooled ones. On the http transport a call sent on a
// reused connection now and then got no answer until its time-out: the
// server's side of that connection waited for a request it never read (seen
// in goroutine dumps of the mdns tests, about one run in five on a loaded
// 2-core machine). A loopback or LAN dial costs far less than that.
var noHTTPPool = client.PoolSize(0)

// Close stops announcing NATS on the LAN (if it did) and drains the NATS
// connection, delivering what was published. The
// go-micro NATS plugins keep their own connections, which they never close:
// they end with the process.
func (m *Mesh) Close() error {
	if m.ann != nil {
		_ = m.ann.Stop()
	}
	if m.nc.IsClosed() {
		return nil
	}
	err := m.nc.Drain()
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("mesh: drain NATS: %w", err)
	}
	return nil
}

// etcdEndpoints returns the etcd client endpoints of a --registry_address
// (host:port or http://host:port, comma-separated; default 127.0.0.1:2379),
// or why it cannot use them. go-micro's etcd plugin skips an address it
// cannot read, silently, and would then use 127.0.0.1:2379.
func etcdEndpoints(list string) ([]string, error) {
	var out []string
	for _, a := range splitList(list) {
		if strings.HasPrefix(a, "https://") {
			return nil, fmt.Errorf("registry_address %q: botmesh does not speak TLS to etcd yet: give an http:// or host:port endpoint", a)
		}
		a = strings.TrimPrefix(a, "http://")
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" || strings.Contains(a, "/") {
			return nil, fmt.Errorf("registry_address %q is not an etcd endpoint: want host:port, e.g. 127.0.0.1:2379", a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:2379"}
	}
	return out, nil
}

// pluginAddrs rewrites tls:// URLs as nats:// for the go-micro NATS
// plugins, which put nats:// before any address that lacks it (making
// "nats://tls://host"); TLS itself reaches them through the options.
func pluginAddrs(servers []string) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s
		if rest, ok := strings.CutPrefix(s, "tls://"); ok {
			out[i] = "nats://" + rest
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// redactURL hides passwords and tokens in NATS URLs before they reach a log
// or an error.
func redactURL(s string) string {
	parts := splitList(s)
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
