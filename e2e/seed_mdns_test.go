//go:build mdns

package e2e

import (
	"testing"

	"github.com/botmesh/botmesh/sdk/mesh"
)

// The Micro Bot blog's command service with go-micro's defaults (mdns
// registry, http transport; no flag at all) against a botmesh in mdns mode
// (--registry mdns --transport http, as go-micro's mdns registry needs):
// botmesh finds it on the LAN and calls it. `make test-mdns` runs this in a
// network namespace with multicast.
func TestMDNSSeedExample(t *testing.T) {
	in, _ := startMeshWith(t, func(c *mesh.Config) {
		c.Registry = mesh.RegistryMDNS
		c.Transport = mesh.TransportHTTP
		c.ServerAddress = "127.0.0.1:0"
	})
	seed := startSeed(t)
	seedSuite(t, in, seed)
}
