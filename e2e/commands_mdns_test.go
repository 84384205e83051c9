//go:build mdns

package e2e

import (
	"net"
	"testing"

	"github.com/botmesh/botmesh/sdk/mesh"
)

// The registry and query commands on go-micro's mdns registry with the
// http transport (zero-conf on a LAN), through a router, as a user sees
// them. mDNS needs multicast: `make test-mdns` runs this in a network
// namespace.
func TestMDNSCommands(t *testing.T) {
	commandSuite(t, func(c *mesh.Config) {
		c.Registry = mesh.RegistryMDNS
		c.Transport = mesh.TransportHTTP
		c.ServerAddress = "127.0.0.1:0"
	}, "mdns", "http", deadTCPAddress(t))
}

// deadTCPAddress returns a loopback address where nothing listens.
func deadTCPAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
