// Package allinone runs the whole mesh in one process: an embedded NATS
// server, a router, the command services and a gateway with its inputs. It
// is the default way to try botmesh and to develop against it; the parts
// are the same as in a distributed deployment, only co-located.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/admin"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/lan"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/botmesh/botmesh/services/greeter"
	"github.com/botmesh/botmesh/services/query"
	registrycmd "github.com/botmesh/botmesh/services/registry-cmd"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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
	// (--nats_announce), so that parts started elsewhere without
	// --nats_url find it. With External, Mesh.Announce does the same for
	// the external server.
	Announce bool
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
	}
}

// DemoService is the registry name of the demo go-micro service (not a
// command) the all-in-one runs for query and health to call.
const DemoService = greeter.Name

// Run runs the mesh until ctx ends or every input has ended (the shell at
// end of input), then stops the parts in order: gateway, router, services,
// NATS. inputs must be Init'ed. ready, if not nil, is called with the NATS
// URL once messages are answered.
func Run(ctx context.Context, cfg Config, inputs []adapter.Input, log *slog.Logger, ready func(natsURL string)) (err error) {
	if cfg.Gateway.Delivery == "" {
		cfg.Gateway.Delivery = cfg.Router.Delivery // the gateway must speak the routers' delivery
	}
	mcfg := cfg.Mesh
	var meshOpts []mesh.Option
	if !cfg.External {
		ns, stop, err := startNATS(cfg.NATSHost, cfg.NATSPort)
		if err != nil {
			return err
		}
		defer stop()
		mcfg.NATSURL = ns.ClientURL()
		mcfg.FindNATS, mcfg.Announce = false, false
		log.Info("embedded NATS server", "url", mcfg.NATSURL)
		// The parts reach the server in memory rather than through
		// loopback TCP: fewer syscalls for every message. Other
		// processes use the URL.
		if os.Getenv("XINPROC") != "" {
			meshOpts = append(meshOpts, mesh.WithNATSOptions(nats.InProcessServer(ns)))
		}
		if cfg.Announce {
			a, err := lan.Announce(ns.Addr().String(), log)
			if err != nil {
				return err
			}
			defer func() { _ = a.Stop() }()
			if ip := net.ParseIP(cfg.NATSHost); ip != nil && ip.IsLoopback() {
				log.Warn("the embedded NATS server listens on loopback only: parts on other hosts cannot use it (set --nats_host 0.0.0.0)", "nats_host", cfg.NATSHost)
			}
			log.Info("announcing NATS on the LAN", "urls", a.URLs(), "service", lan.Service)
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
			return err
		}
	}
	if ready != nil {
		ready(mcfg.NATSURL)
	}
	return g.Run(ctx)
}

// startNATS starts the embedded NATS server, with JetStream in a temporary
// directory (gateways keep their de-duplication memory there); stop it with
// the returned func.
func startNATS(host string, port int) (*natsserver.Server, func(), error) {
	dir, err := os.MkdirTemp("", "botmesh-nats-")
	if err != nil {
		return nil, nil, fmt.Errorf("embedded NATS: %w", err)
	}
	s, err := natsserver.NewServer(&natsserver.Options{
		Host:      host,
		Port:      port,
		NoSigs:    true,
		NoLog:     true,
		JetStream: true,
		StoreDir:  dir,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("embedded NATS: %w", err)
	}
	stop := func() {
		s.Shutdown()
		s.WaitForShutdown()
		os.RemoveAll(dir)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		stop()
		return nil, nil, fmt.Errorf("embedded NATS on %s:%d did not start within 10s", host, port)
	}
	return s, stop, nil
}
