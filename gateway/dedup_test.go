package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go"
)

// The bucket remembers ids across checks that were not waited for one by
// one, in the order they were made.
func TestKVDedupPipelined(t *testing.T) {
	s := meshtest.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	d, err := newDeduper(ctx, nc, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != "jetstream" {
		t.Fatalf("deduper %s, want jetstream", d)
	}
	ids := []string{"a", "b", "a", "c", "b", "a"}
	want := []bool{false, false, true, false, true, true}
	var checks []func() (bool, error)
	for _, id := range ids {
		checks = append(checks, d.check(ctx, id))
	}
	for i, c := range checks {
		dup, err := c()
		if err != nil || dup != want[i] {
			t.Errorf("check %d (%s): %v, %v; want %v", i, ids[i], dup, err, want[i])
		}
	}
	// Another replica shares the memory.
	d2, err := newDeduper(ctx, nc, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if dup, err := d2.check(ctx, "c")(); !dup || err != nil {
		t.Errorf("c on another replica: %v, %v; want a duplicate", dup, err)
	}
}
