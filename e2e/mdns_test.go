//go:build mdns

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
)

// Discovery through go-micro's mdns registry, with go-micro's http
// transport: the zero-conf setup of a LAN without a NATS-backed registry.
// mDNS needs multicast, which loopback lacks outside a network namespace:
// `make test-mdns` runs this inside one.
func TestMDNSDiscovery(t *testing.T) {
	s := meshtest.NATS(t)
	zeroconf := func(c *mesh.Config) {
		c.Registry = mesh.RegistryMDNS
		c.Transport = mesh.TransportHTTP
		c.ServerAddress = "127.0.0.1:0"
	}
	r, err := router.New(meshtest.Mesh(t, s, zeroconf), router.Config{Timeout: 5 * time.Second, ResyncInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-r.Ready()

	in := adaptertest.New("test")
	g, err := gateway.New(meshtest.Mesh(t, s, nil).NATS(), []adapter.Input{in}, gateway.Config{}, meshtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Run(ctx) }()

	svc, err := command.New(meshtest.Mesh(t, s, zeroconf), "echo", echo.Handler{})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		rep := ask(t, in, "echo over mdns")
		if string(rep.Data) == "over mdns" {
			break
		}
		if time.Since(started) > 20*time.Second {
			t.Fatalf("echo not usable over mdns after 20s: %q", rep.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("echo usable over mdns %s after it started", time.Since(started).Round(time.Millisecond))
	if help := string(ask(t, in, "help").Data); !strings.Contains(help, "echo [text] - Returns the [text]") {
		t.Errorf("help over mdns:\n%s", help)
	}

	stopped := time.Now()
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	for strings.Contains(string(ask(t, in, "help").Data), "echo") {
		if time.Since(stopped) > 20*time.Second {
			t.Fatal("echo still in help 20s after it stopped")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("echo left help %s after it stopped", time.Since(stopped).Round(time.Millisecond))
}
