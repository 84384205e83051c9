//go:build mdns

package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/natsconn"
)

// Issue 12 over real mDNS: anyone on the LAN can announce a NATS server.
// A part with a password looks for one only when asked (--find_nats), and
// then sends its password only to a server whose TLS certificate
// verifies. Runs inside a network namespace with multicast on loopback
// (`make test-mdns`).
func TestMDNSLANAuth(t *testing.T) {
	// The attacker's server: a plain nats-server (no TLS, no auth),
	// announced by a part started with --nats_announce.
	url := startNATS(t)
	announcer := start(t, "router-evil", "router", noAddress, "--nats_url", url, "--nats_announce", "--log_level", "info", "--rate_user", "0", "--rate_channel", "0")
	waitLog(t, announcer, regexp.MustCompile(`msg="announcing NATS on the LAN"`), 10*time.Second)

	t.Run("not looked for unless asked", func(t *testing.T) {
		g := start(t, "greeter-default", "greeter", noAddress, "--nats_user", "bob", "--nats_password", "s3cret-pw", "--log_level", "info")
		waitLog(t, g, regexp.MustCompile(`msg="waiting for NATS" .*url=nats://127.0.0.1:4222`), 10*time.Second)
		time.Sleep(2 * time.Second) // several LAN queries' worth
		if strings.Contains(g.stderr.String(), "found NATS") {
			t.Errorf("a part without --find_nats looked on the LAN:\n%s", g.stderr.String())
		}
	})

	t.Run("a password is not sent to a server without TLS", func(t *testing.T) {
		g := start(t, "greeter-pw", "greeter", noAddress, "--find_nats", "--nats_user", "bob", "--nats_password", "s3cret-pw", "--log_level", "info")
		select {
		case <-g.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("greeter still running:\n%s", g.stderr.String())
		}
		want := "greeter: refusing the NATS server found on the LAN at " + url + ": it does not offer TLS, and this process sends its credentials only to a server whose TLS certificate it verifies."
		if g.err == nil || !strings.Contains(g.stderr.String(), want) {
			t.Errorf("exit %v; stderr:\n%s\nwant a line with:\n%s", g.err, g.stderr.String(), want)
		}
	})

	t.Run("a credentials file is not sent to a server it does not verify", func(t *testing.T) {
		creds := filepath.Join(t.TempDir(), "mesh.creds")
		if err := natsconn.WriteCredsFile(creds, natsconn.CredsFile{User: "admin", Password: natsconn.GeneratePassword()}); err != nil {
			t.Fatal(err)
		}
		g := start(t, "greeter-creds", "greeter", noAddress, "--find_nats", "--nats_creds", creds, "--log_level", "info")
		select {
		case <-g.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("greeter still running:\n%s", g.stderr.String())
		}
		if g.err == nil || !strings.Contains(g.stderr.String(), "refusing the NATS server found on the LAN at "+url) {
			t.Errorf("exit %v; stderr:\n%s", g.err, g.stderr.String())
		}
	})
}
