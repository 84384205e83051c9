// Package allinone runs the whole mesh in one process: an embedded NATS
// server, a router, the command services and a gateway with its inputs. It
// is the default way to try botmesh and to develop against it; the parts
// are the same as in a distributed deployment, only co-located.
package allinone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/admin"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/flagenv"
	"github.com/botmesh/botmesh/sdk/lan"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/natsconn"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/botmesh/botmesh/services/greeter"
	"github.com/botmesh/botmesh/services/note"
	"github.com/botmesh/botmesh/services/query"
	registrycmd "github.com/botmesh/botmesh/services/registry-cmd"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config is the all-in-one's configuration.
type Config struct {
	// Mesh says how the parts reach each other. Its NATSURL is ignored
	// unless External is set.
	Mesh mesh.Config
	// External uses the NATS server at Mesh.NATSURL instead of embedding
	// one.
	External bool
	// NATSHost and NATSPort are where the embedded NATS server listens;
	// port -1 picks a free port.
	NATSHost string
	NATSPort int
	// Announce announces the embedded NATS server on the LAN with mDNS
	// (--nats_announce), so that parts started elsewhere with --find_nats
	// find it. With External, Mesh.Announce does the same for the external
	// server.
	//
	// The embedded server always requires a password. When it is
	// announced or listens beyond loopback it also speaks TLS, with a
	// certificate from a CA made at start that the credentials file
	// carries: parts on other hosts need a copy of that file
	// (--nats_creds), and find the server with --find_nats only because
	// its certificate verifies.
	Announce bool
	// CredsFile, if not empty, is where Run writes what another process
	// needs to use the embedded NATS server: its URL on this host, the
	// admin user and its password made at start, and with TLS the CA
	// (natsconn.WriteCredsFile: mode 0600, in a directory of mode 0700). Run
	// removes it at exit if it still holds this run's password. Main sets
	// it to natsconn.DefaultCredsFile() (--creds_file).
	CredsFile string
	// DataDir is where the embedded NATS server keeps its JetStream store
	// (command services' memory, schedules, audit records) across
	// restarts; Run locks it, so that a second botmesh cannot share it.
	// Empty: a temporary directory, removed at exit. Main sets it to
	// DefaultDataDir() (--data_dir).
	DataDir string
	// NoDemo leaves out the demo service (greeter).
	NoDemo bool
	// Router and Gateway configure the two parts.
	Router  router.Config
	Gateway gateway.Config
	// Admin, if not nil, serves the health and metrics of every part.
	Admin *admin.Server
}

// Services returns the command services the all-in-one runs, by name.
func Services() map[string]func(*mesh.Mesh) (chatopsv1.CommandHandler, error) {
	return map[string]func(*mesh.Mesh) (chatopsv1.CommandHandler, error){
		"echo": func(*mesh.Mesh) (chatopsv1.CommandHandler, error) { return echo.Handler{}, nil },
		registrycmd.Name: func(m *mesh.Mesh) (chatopsv1.CommandHandler, error) {
			return registrycmd.New(m.Registry(), registrycmd.WithNamespace(m.Namespace()), registrycmd.WithLogger(m.Logger().With("service", registrycmd.Name))), nil
		},
		query.Name: func(m *mesh.Mesh) (chatopsv1.CommandHandler, error) {
			return query.New(m.Registry(), m.NewClient(), query.WithLogger(m.Logger().With("service", query.Name))), nil
		},
		note.Name: func(m *mesh.Mesh) (chatopsv1.CommandHandler, error) {
			js, err := jetstream.New(m.NATS())
			if err != nil {
				return nil, err
			}
			return note.New(js)
		},
	}
}

// DemoService is the registry name of the demo go-micro service (not a
// command) the all-in-one runs for query and health to call.
const DemoService = greeter.Name

// Run runs the mesh until ctx ends or every input has ended (the shell at
// end of input), then stops the parts in order: gateway, router, services,
// NATS. inputs must be Init'ed. ready, if not nil, is called with the NATS
// URL once messages are answered: every part runs and every listener is up
// (the NATS server, the admin server, and every input, such as the web
// chat). If one cannot listen (its address is taken), Run returns why
// without calling ready. For the embedded server that URL carries
// the admin user and password (nats://admin:…@127.0.0.1:port), for the
// caller's own connections: do not log or print it (mesh redacts URLs in
// its logs).
//
// The embedded server has two users, each with a password made at start
// from crypto/rand: one for the parts in this process (its password never
// leaves the process) and "admin" for botctl and other processes (written
// to CredsFile). A client without them is refused.
func Run(ctx context.Context, cfg Config, inputs []adapter.Input, log *slog.Logger, ready func(natsURL string)) (err error) {
	if cfg.Gateway.Delivery == "" {
		cfg.Gateway.Delivery = cfg.Router.Delivery // the gateway must speak the routers' delivery
	}
	mcfg := cfg.Mesh
	readyURL := mcfg.NATSURL
	var meshOpts []mesh.Option
	if !cfg.External {
		serveTLS := cfg.Announce || !isLoopback(cfg.NATSHost)
		emb, err := startNATS(cfg.NATSHost, cfg.NATSPort, serveTLS, cfg.DataDir)
		if err != nil {
			return err
		}
		defer emb.stop()
		mcfg.NATSURL = emb.url
		mcfg.FindNATS, mcfg.Announce = false, false
		mcfg.Auth = natsconn.Auth{User: partsUser, Password: emb.partsPassword}
		readyURL = emb.adminURL()
		log.Info("embedded NATS server", "url", emb.url, "listen", emb.ns.Addr().String(), "tls", serveTLS, "data_dir", cfg.DataDir)
		if emb.tls != nil {
			meshOpts = append(meshOpts, mesh.WithNATSOptions(nats.Secure(emb.tls)))
		}
		if cfg.CredsFile != "" {
			if err := natsconn.WriteCredsFile(cfg.CredsFile, emb.creds()); err != nil {
				return fmt.Errorf("%w (set --creds_file to a writable path)", err)
			}
			defer removeIfOurs(cfg.CredsFile, emb.adminPassword, log)
			log.Info("wrote the NATS credentials for botctl and other parts", "creds_file", cfg.CredsFile)
		}
		// The parts reach the server in memory rather than through
		// loopback TCP: fewer syscalls for every message. Other
		// processes use the URL.
		meshOpts = append(meshOpts, mesh.WithNATSOptions(nats.InProcessServer(emb.ns)))
		if cfg.Announce {
			a, err := lan.Announce(emb.ns.Addr().String(), log)
			if err != nil {
				return err
			}
			defer func() { _ = a.Stop() }()
			if ip := net.ParseIP(cfg.NATSHost); ip != nil && ip.IsLoopback() {
				log.Warn("the embedded NATS server listens on loopback only: parts on other hosts cannot use it (set --nats_host 0.0.0.0)", "nats_host", cfg.NATSHost)
			}
			log.Info("announcing NATS on the LAN", "urls", a.URLs(), "service", lan.Service)
		}
		if serveTLS {
			log.Info("the embedded NATS server is open to other hosts: it requires the admin password and speaks TLS; parts there need a copy of the credentials file (--nats_creds)", "creds_file", cfg.CredsFile)
		}
	}
	if mcfg.ConnectWait == 0 {
		mcfg.ConnectWait = 10 * time.Second
	}
	m, err := mesh.Connect(ctx, mcfg, append(meshOpts, mesh.WithLogger(log))...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, m.Close()) }()

	if !cfg.NoDemo {
		demo, err := greeter.New(m, DemoService)
		if err != nil {
			return err
		}
		if err := demo.Start(); err != nil {
			return fmt.Errorf("demo service %s: start: %w", DemoService, err)
		}
		defer func() {
			if serr := demo.Stop(); serr != nil {
				err = errors.Join(err, fmt.Errorf("demo service %s: stop: %w", DemoService, serr))
			}
		}()
	}

	// Services first, so the router's first look at the registry finds
	// them and no message meets an unknown command.
	for name, build := range Services() {
		h, err := build(m)
		if err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		svc, err := command.New(m, name, h)
		if err != nil {
			return err
		}
		if cfg.Admin != nil {
			if err := svc.Register(cfg.Admin.Registry()); err != nil {
				return err
			}
		}
		if err := svc.Start(); err != nil {
			return err
		}
		defer func() {
			if serr := svc.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
		}()
	}

	rctx, stopRouter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRouter()
	r, err := router.New(m, cfg.Router)
	if err != nil {
		return err
	}
	if cfg.Admin != nil {
		admin.RegisterNATS(cfg.Admin.Registry(), m.NATS())
		cfg.Admin.AddCheck("nats", admin.NATSCheck(m.NATS()))
		cfg.Admin.AddCheck("router", r.Healthy)
		if err := r.Register(cfg.Admin.Registry()); err != nil {
			return err
		}
	}
	routerDone := make(chan error, 1)
	go func() { routerDone <- r.Run(rctx) }()
	defer func() {
		stopRouter()
		err = errors.Join(err, <-routerDone)
	}()
	select {
	case <-r.Ready():
	case err := <-routerDone:
		routerDone <- err
		return fmt.Errorf("router: %w", err)
	case <-ctx.Done():
		return nil
	}

	g, err := gateway.New(m.NATS(), inputs, cfg.Gateway, log)
	if err != nil {
		return err
	}
	if cfg.Admin != nil {
		if err := g.Register(cfg.Admin.Registry()); err != nil {
			return err
		}
		cfg.Admin.AddCheck("inputs", g.Healthy)
		if err := cfg.Admin.Start(ctx); err != nil {
			return inUse(err, "the admin server (/healthz, /metrics)", "admin_address", "a free address")
		}
	}
	// The gateway starts the inputs (the web chat listens then): ready
	// once it has started them all, never before one failed.
	gatewayDone := make(chan error, 1)
	go func() { gatewayDone <- g.Run(ctx) }()
	select {
	case <-g.Started():
	case err := <-gatewayDone:
		select {
		case <-g.Started(): // every input started, and all have ended already
			gatewayDone <- err
		default:
			return err
		}
	}
	if ready != nil {
		ready(readyURL)
	}
	return <-gatewayDone
}

// inUseError says that a listener of the all-in-one cannot listen because
// another program has its address, and which flag moves it.
type inUseError struct {
	what, addr, flag, free string
	err                    error
}

func (e *inUseError) Error() string {
	return fmt.Sprintf("%s cannot listen on %s: the address is in use (by another botmesh, or another program); set --%s (or %s) to %s",
		e.what, e.addr, e.flag, flagenv.Name(e.flag), e.free)
}

func (e *inUseError) Unwrap() error { return e.err }

// inUse returns err as an inUseError if it says that the address is in
// use, else unchanged. what names the listener, flag sets its address,
// and free says what to set it to.
func inUse(err error, what, flag, free string) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	addr := "its address"
	if oe := (*net.OpError)(nil); errors.As(err, &oe) && oe.Addr != nil {
		addr = oe.Addr.String()
	}
	return &inUseError{what: what, addr: addr, flag: flag, free: free, err: err}
}

// The users of the embedded NATS server.
const (
	partsUser = "botmesh" // the parts in this process
	adminUser = "admin"   // botctl and other processes: the credentials file
)

// embedded is the running embedded NATS server.
type embedded struct {
	ns *natsserver.Server
	// url is where this host reaches it: loopback when it listens on
	// every interface, tls:// when it speaks TLS.
	url                          string
	partsPassword, adminPassword string
	// tls trusts the server's CA (nil without TLS); caPEM is that CA.
	tls   *tls.Config
	caPEM []byte
	stop  func()
}

// adminURL returns url with the admin user and password in it.
func (e *embedded) adminURL() string {
	u, err := url.Parse(e.url)
	if err != nil {
		return e.url
	}
	u.User = url.UserPassword(adminUser, e.adminPassword)
	return u.String()
}

// creds returns the credentials file's content.
func (e *embedded) creds() natsconn.CredsFile {
	return natsconn.CredsFile{URL: e.url, User: adminUser, Password: e.adminPassword, CA: e.caPEM}
}

// startNATS starts the embedded NATS server, with JetStream in dataDir
// (locked while it runs) or, if it is empty, in a temporary directory, its
// two users with fresh passwords, and, if withTLS, TLS with a certificate
// from a fresh CA; stop it with emb.stop.
func startNATS(host string, port int, withTLS bool, dataDir string) (*embedded, error) {
	emb := &embedded{partsPassword: natsconn.GeneratePassword(), adminPassword: natsconn.GeneratePassword()}
	opts := &natsserver.Options{
		Host:      host,
		Port:      port,
		NoSigs:    true,
		NoLog:     true,
		JetStream: true,
		Users: []*natsserver.User{
			{Username: partsUser, Password: emb.partsPassword},
			{Username: adminUser, Password: emb.adminPassword},
		},
	}
	if withTLS {
		tc, caPEM, err := serverTLS(host)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 5
		emb.caPEM = caPEM
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		emb.tls = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	dir := dataDir
	var release func()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "botmesh-nats-")
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		dir, release = tmp, func() { os.RemoveAll(tmp) }
	} else {
		var err error
		if release, err = openDataDir(dir); err != nil {
			return nil, err
		}
	}
	opts.StoreDir = dir
	s, err := natsserver.NewServer(opts)
	if err != nil {
		release()
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	emb.ns = s
	emb.stop = func() {
		s.Shutdown()
		s.WaitForShutdown()
		release()
	}
	// A server that cannot listen says so in its log and gives up; with
	// no log ReadyForConnections would wait its whole timeout.
	fatal := &fatalLog{errs: make(chan error, 1)}
	s.SetLogger(fatal, false, false)
	go s.Start()
	for deadline := time.Now().Add(10 * time.Second); !s.ReadyForConnections(50 * time.Millisecond); {
		select {
		case err := <-fatal.errs:
			emb.stop()
			if err := inUse(err, "the embedded NATS server", "nats_port", "a free port (-1: any free port)"); errors.Is(err, syscall.EADDRINUSE) {
				return nil, err
			}
			return nil, fmt.Errorf("embedded NATS on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
		default:
		}
		if time.Now().After(deadline) {
			emb.stop()
			return nil, fmt.Errorf("embedded NATS on %s did not start within 10s", net.JoinHostPort(host, strconv.Itoa(port)))
		}
	}
	scheme := "nats"
	if withTLS {
		scheme = "tls"
	}
	local := host
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		local = "127.0.0.1"
	}
	_, p, _ := net.SplitHostPort(s.Addr().String())
	emb.url = scheme + "://" + net.JoinHostPort(local, p)
	return emb, nil
}

// fatalLog is a nats-server logger that keeps the first fatal error and
// drops the rest of the log (the embedded server runs with NoLog).
type fatalLog struct{ errs chan error }

// Fatalf keeps the error among v (nats-server passes the listener's), or
// the message if there is none.
func (l *fatalLog) Fatalf(format string, v ...any) {
	err := fmt.Errorf(format, v...)
	for _, a := range v {
		if e, ok := a.(error); ok {
			err = e
			break
		}
	}
	select {
	case l.errs <- err:
	default:
	}
}

func (*fatalLog) Noticef(string, ...any) {}
func (*fatalLog) Warnf(string, ...any)   {}
func (*fatalLog) Errorf(string, ...any)  {}
func (*fatalLog) Debugf(string, ...any)  {}
func (*fatalLog) Tracef(string, ...any)  {}

// isLoopback reports whether a server listening on host is reachable from
// this host only.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// removeIfOurs removes the credentials file at exit, unless another run
// (a second all-in-one of the same user) has replaced it since.
func removeIfOurs(path, password string, log *slog.Logger) {
	cf, err := natsconn.ReadCredsFile(path)
	if err != nil || cf.Password != password {
		return
	}
	if err := os.Remove(path); err != nil {
		log.Warn("cannot remove the credentials file", "creds_file", path, "err", err)
	}
}
