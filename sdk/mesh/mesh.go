// Package mesh connects a botmesh process to the mesh: the NATS connection
// that carries chat events (package natsconn), and the go-micro registry
// and transport that carry command RPCs. Every botmesh binary that calls or
// serves commands builds one Mesh from a Config and passes it to the parts
// it runs; nothing here touches go-micro's global defaults. Parts that only
// speak NATS use natsconn alone, and do not link go-micro's registries.
package mesh

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/botmesh/botmesh/sdk/natsconn"
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

// Config says how to reach the mesh: the NATS connection (natsconn.Config,
// embedded) and the go-micro registry and transport. The zero value is not
// valid; start from DefaultConfig or RegisterFlags.
type Config struct {
	natsconn.Config
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
}

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{
		Config:        natsconn.DefaultConfig(),
		Registry:      RegistryNATS,
		Transport:     TransportNATS,
		ServerAddress: "127.0.0.1:0",
		Namespace:     DefaultNamespace,
	}
}

// RegisterFlags adds the mesh flags to fs, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags(fs)
	c.RegisterMicroFlags(fs)
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
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, err)
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
	return errors.Join(errs...)
}

// Mesh is one process's connection to the mesh. Its registry and transport
// are shared by every server and client the process builds from it. Its
// NATS connection's methods (NATS, OnConnectionChange, Close) are
// natsconn.Conn's; Close leaves the connections of go-micro's NATS plugins,
// which they never close: they end with the process.
type Mesh struct {
	*natsconn.Conn
	cfg  Config
	log  *slog.Logger
	reg  registry.Registry
	tr   transport.Transport
	brk  broker.Broker
	mlog logger.Logger

	others      callers             // for nodes on another transport than tr
	perNodeOpts []client.CallOption // the last options of every call (perNodeClient)
}

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
	conn, err := natsconn.Connect(ctx, cfg.Config, log, o.nopts...)
	if err != nil {
		return nil, err
	}
	cfg.Config = conn.Config()
	m := &Mesh{Conn: conn, cfg: cfg, log: log, brk: broker.NewMemoryBroker(), mlog: NewMicroLogger(log.With("component", "go-micro"))}
	// The go-micro plugins open their own connections: give them the same
	// servers and credentials, without our callbacks.
	pluginOpts := conn.PluginOptions()

	switch {
	case o.reg != nil:
		m.reg = o.reg
	case cfg.Registry == RegistryNATS:
		addrs := pluginAddrs(pluginOpts.Servers)
		if cfg.RegistryAddress != "" {
			addrs = pluginAddrs(natsconn.SplitList(cfg.RegistryAddress))
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
			ropts = append(ropts, registry.Addrs(natsconn.SplitList(cfg.RegistryAddress)...))
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
		m.tr = natstransport.New(conn.NATS(), transport.Logger(m.mlog))
	case TransportNATSPlugin:
		m.tr = natstr.NewTransport(natstr.Options(pluginOpts), transport.Addrs(pluginAddrs(pluginOpts.Servers)...))
	default:
		m.tr = portRanges{transport.NewHTTPTransport(transport.Logger(m.mlog))}
	}
	return m, nil
}

// Config returns the configuration the mesh was built from.
func (m *Mesh) Config() Config { return m.cfg }

// Logger returns the mesh's logger.
func (m *Mesh) Logger() *slog.Logger { return m.log }

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

// etcdEndpoints returns the etcd client endpoints of a --registry_address
// (host:port or http://host:port, comma-separated; default 127.0.0.1:2379),
// or why it cannot use them. go-micro's etcd plugin skips an address it
// cannot read, silently, and would then use 127.0.0.1:2379.
func etcdEndpoints(list string) ([]string, error) {
	var out []string
	for _, a := range natsconn.SplitList(list) {
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
