package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/botmesh/botmesh/sdk/durable"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DedupBucket is the JetStream key-value bucket where gateways record the
// event ids they have taken, so that a platform's redelivery of an event
// (Slack retries an event it thinks was not acknowledged, possibly to
// another replica) produces one reply, not two.
const DedupBucket = "botmesh_gateway_seen"

// deduper records event ids and says whether one was recorded before.
type deduper interface {
	// check records id and returns a func that reports whether it was
	// already recorded within the window. The func may wait for the
	// answer; ids checked one after another are recorded in that order.
	check(ctx context.Context, id string) func() (bool, error)
	String() string
}

// newDeduper returns the JetStream-backed deduper shared by every gateway
// replica when the NATS server has JetStream, else one that remembers in
// this process only.
func newDeduper(ctx context.Context, nc *nats.Conn, window time.Duration) (deduper, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return newMemDedup(window), err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := durable.EnsureKeyValue(cctx, js, jetstream.KeyValueConfig{
		Bucket:      DedupBucket,
		Description: "event ids taken by botmesh gateways, for de-duplication of redeliveries",
		TTL:         window,
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return newMemDedup(window), fmt.Errorf("dedup bucket: %w", err)
	}
	return &kvDedup{js: js, prefix: "$KV." + kv.Bucket() + "."}, nil
}

// kvDedup records ids in the bucket without waiting for each answer: a
// record is a JetStream publish to the key's subject that expects no
// earlier record of it, which is what KeyValue.Create does (ADR-8), but
// asynchronous, so a busy input checks many events per round trip.
type kvDedup struct {
	js     jetstream.JetStream
	prefix string // subject of the bucket's keys, up to the key
}

func (k *kvDedup) String() string { return "jetstream" }

func (k *kvDedup) check(_ context.Context, id string) func() (bool, error) {
	f, err := k.js.PublishMsgAsync(&nats.Msg{Subject: k.prefix + dedupKey(id)},
		jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithStallWait(ackTimeout))
	if err != nil {
		return func() (bool, error) { return false, err }
	}
	return func() (bool, error) {
		select {
		case <-f.Ok():
			return false, nil
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrKeyExists) {
				return true, nil // a record within the window: seen
			}
			return false, err
		}
	}
}

// dedupKey maps any event id to a valid key.
func dedupKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// memDedup remembers ids in this process for the window.
type memDedup struct {
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	ids  map[string]time.Time
	next time.Time // next sweep of expired ids
}

func newMemDedup(window time.Duration) *memDedup {
	return &memDedup{window: window, now: time.Now, ids: map[string]time.Time{}}
}

func (m *memDedup) String() string { return "memory" }

func (m *memDedup) check(_ context.Context, id string) func() (bool, error) {
	dup := m.seen(id)
	return func() (bool, error) { return dup, nil }
}

func (m *memDedup) seen(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.After(m.next) {
		for k, t := range m.ids {
			if now.Sub(t) > m.window {
				delete(m.ids, k)
			}
		}
		m.next = now.Add(m.window / 10)
	}
	if t, ok := m.ids[id]; ok && now.Sub(t) <= m.window {
		return true
	}
	m.ids[id] = now
	return false
}
