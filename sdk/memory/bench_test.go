package memory_test

import (
	"fmt"
	"testing"

	"github.com/botmesh/botmesh/sdk/memory"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkPut measures Put of an existing key (the key list is read, not
// written) and of a new key (the list is written too), and Get, on an
// embedded NATS server with a file store.
func BenchmarkMemory(b *testing.B) {
	s := meshtest.NATS(b)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if err := memory.EnsureBuckets(b.Context(), js, 1); err != nil {
		b.Fatal(err)
	}
	store, _ := memory.New(js, "bench", memory.WithLimits(memory.User, memory.Limits{MaxValueBytes: 1024, MaxKeys: memory.MaxKeysLimit}))
	m, _ := store.Of(memory.User, req("web", "", "u", "c"))
	ctx := b.Context()
	value := make([]byte, 256)
	b.Run("put same key", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Put(ctx, "k", value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Get(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("put new key and delete it", func(b *testing.B) {
		i := 0
		for b.Loop() {
			k := fmt.Sprint("n", i)
			i++
			if _, err := m.Put(ctx, k, value); err != nil {
				b.Fatal(err)
			}
			if err := m.Delete(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}
