package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Two routers starting at once on a fresh 3-node cluster make the same
// replicated streams, consumers and buckets together. nats-server 2.15.2
// stops answering for over a minute when an update and a create of one
// stream meet (nats.go's CreateOrUpdate* send both); sdk/durable's Ensure*
// create first, and every step here must succeed within its 10 s.
func TestIntegrationStreamsCreatedConcurrently(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	c := startCluster(t)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			nc, err := nats.Connect(c.urls())
			if err != nil {
				t.Error(err)
				return
			}
			js, _ := jetstream.New(nc)
			ctx := context.Background()
			all := time.Now()
			for i := range 4 {
				name := fmt.Sprint("s", i)
				s := time.Now()
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := durable.EnsureStreamConfig(actx, js, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Replicas: 3})
				_, err2 := durable.EnsureConsumer(actx, js, name, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
				_, err3 := durable.EnsureKeyValue(actx, js, jetstream.KeyValueConfig{Bucket: name, Replicas: 3})
				cancel()
				if err != nil || err2 != nil || err3 != nil {
					t.Errorf("creator %d, %s: stream %v, consumer %v, bucket %v (after %s)", r, name, err, err2, err3, time.Since(s).Round(time.Millisecond))
				}
			}
			t.Logf("creator %d: 4 streams, consumers and buckets in %s", r, time.Since(all).Round(time.Millisecond))
		})
	}
	wg.Wait()
}
