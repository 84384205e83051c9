//go:build mdns

package lan_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/lan"
)

// Announce and Find over real multicast. mDNS needs multicast, which
// loopback lacks outside a network namespace: `make test-mdns` runs this
// inside one.
func TestMDNSAnnounceFind(t *testing.T) {
	t.Run("nothing announced", func(t *testing.T) {
		started := time.Now()
		u, err := lan.Find(t.Context(), 300*time.Millisecond, nil)
		if !errors.Is(err, lan.ErrNotFound) {
			t.Fatalf("found %q, %v with nothing announced", u, err)
		}
		t.Logf("ErrNotFound after %s (wait 300ms)", time.Since(started).Round(time.Millisecond))
	})

	a, err := lan.Announce("nats://bob:s3cret@127.0.0.1:4999", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.URLs(), ","); got != "nats://127.0.0.1:4999" {
		t.Errorf("announced %s", got)
	}
	for i := range 3 {
		started := time.Now()
		u, err := lan.Find(t.Context(), 2*time.Second, nil)
		if err != nil || u != "nats://127.0.0.1:4999" {
			t.Fatalf("find %d: %q, %v", i, u, err)
		}
		t.Logf("find %d answered in %s (wait 2s)", i, time.Since(started).Round(time.Microsecond))
	}

	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if u, err := lan.Find(t.Context(), 300*time.Millisecond, nil); !errors.Is(err, lan.ErrNotFound) {
		t.Errorf("after Stop: found %q, %v", u, err)
	}
}
