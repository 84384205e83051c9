// Package meshtest starts real mesh parts in-process for tests: an embedded
// NATS server on a random loopback port, and meshes connected to it.
package meshtest

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/nats-io/nats-server/v2/server"
	"go-micro.dev/v4/registry"
)

// NATS starts a NATS server on 127.0.0.1 at a random port, with JetStream
// in a temporary directory, and shuts it down when the test ends. opts may
// change the server options before it starts.
func NATS(tb testing.TB, opts ...func(*server.Options)) *server.Server {
	tb.Helper()
	o := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		NoLog:     true,
		NoSigs:    true,
		JetStream: true,
		StoreDir:  tb.TempDir(),
	}
	for _, f := range opts {
		f(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		tb.Fatalf("meshtest: new NATS server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatal("meshtest: NATS server not ready after 10s")
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Mesh connects a mesh to s (or, if s is nil, to what edit sets) with the
// default config (NATS registry and transport) changed by edit, logging to
// the test's output. It is closed when the test ends.
func Mesh(tb testing.TB, s *server.Server, edit func(*mesh.Config), opts ...mesh.Option) *mesh.Mesh {
	tb.Helper()
	cfg := mesh.DefaultConfig()
	if s != nil {
		cfg.NATSURL = s.ClientURL()
	}
	cfg.ConnectWait = 10 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	opts = append([]mesh.Option{mesh.WithLogger(Logger(tb))}, opts...)
	m, err := mesh.Connect(context.Background(), cfg, opts...)
	if err != nil {
		tb.Fatalf("meshtest: %v", err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

// Logger returns a logger that writes to the test's output at debug level.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// WaitRegistered waits until a lookup of service in reg finds a node whose
// id starts with nodeID (go-micro server nodes are "<name>-<server id>").
// Registries such as the NATS one answer lookups from a subscription that
// is not yet in place when Register returns: a test that starts a service
// and looks it up at once from elsewhere must wait, as a caller would.
func WaitRegistered(tb testing.TB, reg registry.Registry, service, nodeID string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		svcs, _ := reg.GetService(service)
		for _, s := range svcs {
			for _, n := range s.Nodes {
				if strings.HasPrefix(n.Id, nodeID) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("meshtest: %s node %s not found in the registry within 10s", service, nodeID)
		}
	}
}
