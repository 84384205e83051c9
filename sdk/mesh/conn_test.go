package mesh_test

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/sdk/natsconn"
	"github.com/nats-io/nats-server/v2/server"
)

// A part told of connection changes hears that the connection was lost
// when the NATS server stops, and that it is back when it starts again.
func TestOnConnectionChange(t *testing.T) {
	s := meshtest.NATS(t)
	port := s.Addr().(*net.TCPAddr).Port
	m := meshtest.Mesh(t, s, nil)
	var changes atomic.Int32
	m.OnConnectionChange(func() { changes.Add(1) })
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 10s: %s (changes: %d)", what, changes.Load())
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := changes.Load(); n != 0 {
		t.Fatalf("%d changes while the connection was steady", n)
	}
	s.Shutdown()
	wait("told of the loss", func() bool { return changes.Load() >= 1 && !m.NATS().IsConnected() })
	meshtest.NATS(t, func(o *server.Options) { o.Port = port })
	wait("told it is back", func() bool { return changes.Load() >= 2 && m.NATS().IsConnected() })
}

// The go-micro NATS registry opens a connection of its own: it gets the
// mesh's credentials too.
func TestRegistryWithCredentials(t *testing.T) {
	s := meshtest.NATS(t, func(o *server.Options) { o.Username, o.Password = "botmesh", "s3cret-pw" })
	m := meshtest.Mesh(t, s, func(c *mesh.Config) { c.Auth = natsconn.Auth{User: "botmesh", Password: "s3cret-pw"} })
	if _, err := m.Registry().ListServices(); err != nil {
		t.Errorf("registry with the password: %v", err)
	}
}
