// Package confirm keeps the commands waiting for their author's "yes". A
// pending confirmation lives in a NATS key-value bucket, so whichever router
// replica receives the "yes" can complete it, and only once.
package confirm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/botmesh/botmesh/sdk/durable"
	"sync"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// Bucket is the JetStream key-value bucket of pending confirmations.
const Bucket = "botmesh_confirm"

// ErrNone means there is nothing to confirm: none was asked, it expired, or
// it was already confirmed or cancelled.
var ErrNone = errors.New("confirm: nothing to confirm")

// Store holds pending confirmations, one per user and conversation.
type Store interface {
	// Put records ev as waiting for confirmation under key, replacing any
	// earlier one.
	Put(ctx context.Context, key string, ev *chatopsv1.Event) error
	// Take removes and returns the event waiting under key; ErrNone if
	// there is none. Of two concurrent Takes only one gets the event.
	Take(ctx context.Context, key string) (*chatopsv1.Event, error)
	// Window is how long a confirmation waits.
	Window() time.Duration
}

// Key is the key of the confirmation asked of user in a conversation: only
// the same user in the same place can answer it.
func Key(platform, team, user, conversation, thread string) string {
	sum := sha256.Sum256([]byte(platform + "\x00" + team + "\x00" + user + "\x00" + conversation + "\x00" + thread))
	return hex.EncodeToString(sum[:16])
}

// NewKV returns a Store in the JetStream bucket (created if missing), shared
// by every router replica.
func NewKV(ctx context.Context, js jetstream.JetStream, window time.Duration, replicas int) (Store, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := durable.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "botmesh commands waiting for their author's confirmation",
		TTL:         window,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("confirm: bucket %s: %w", Bucket, err)
	}
	return &kvStore{kv: kv, window: window}, nil
}

type kvStore struct {
	kv     jetstream.KeyValue
	window time.Duration
}

func (s *kvStore) Window() time.Duration { return s.window }

func (s *kvStore) Put(ctx context.Context, key string, ev *chatopsv1.Event) error {
	b, err := proto.Marshal(ev)
	if err != nil {
		return fmt.Errorf("confirm: encode: %w", err)
	}
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("confirm: put: %w", err)
	}
	return nil
}

func (s *kvStore) Take(ctx context.Context, key string) (*chatopsv1.Event, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNone
	}
	if err != nil {
		return nil, fmt.Errorf("confirm: get: %w", err)
	}
	// Delete only the revision we read: if another router took it first,
	// this fails and the confirmation runs once.
	if err := s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, ErrNone
		}
		return nil, fmt.Errorf("confirm: take: %w", err)
	}
	ev := &chatopsv1.Event{}
	if err := proto.Unmarshal(e.Value(), ev); err != nil {
		return nil, fmt.Errorf("confirm: decode: %w", err)
	}
	// The bucket's TTL drops old entries lazily; be exact here.
	if time.Since(e.Created()) > s.window {
		return nil, ErrNone
	}
	return ev, nil
}

// NewMemory returns a Store in this process only, for routers without
// JetStream (a "yes" must then reach the same router).
func NewMemory(window time.Duration) Store {
	return &memStore{window: window, m: map[string]memEntry{}}
}

type memStore struct {
	window time.Duration
	mu     sync.Mutex
	m      map[string]memEntry
}

type memEntry struct {
	ev *chatopsv1.Event
	at time.Time
}

func (s *memStore) Window() time.Duration { return s.window }

func (s *memStore) Put(_ context.Context, key string, ev *chatopsv1.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.m {
		if time.Since(e.at) > s.window {
			delete(s.m, k)
		}
	}
	s.m[key] = memEntry{ev: ev, at: time.Now()}
	return nil
}

func (s *memStore) Take(_ context.Context, key string) (*chatopsv1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	delete(s.m, key)
	if !ok || time.Since(e.at) > s.window {
		return nil, ErrNone
	}
	return e.ev, nil
}
