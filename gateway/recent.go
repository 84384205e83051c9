package gateway

import (
	"sync"
	"time"
)

// Who answered a message.
const (
	answeredByRouter  = 1
	answeredByTimeout = 2
)

// recent remembers small values by key for a while.
type recent struct {
	ttl time.Duration

	mu   sync.Mutex
	m    map[string]entry
	next time.Time
}

type entry struct {
	v  int
	at time.Time
}

func newRecent(ttl time.Duration) *recent { return &recent{ttl: ttl, m: map[string]entry{}} }

func (r *recent) put(k string, v int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.After(r.next) {
		for key, e := range r.m {
			if now.Sub(e.at) > r.ttl {
				delete(r.m, key)
			}
		}
		r.next = now.Add(r.ttl / 10)
	}
	r.m[k] = entry{v: v, at: now}
}

func (r *recent) get(k string) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[k]
	if !ok || time.Since(e.at) > r.ttl {
		return 0, false
	}
	return e.v, true
}

func (r *recent) forget(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, k)
}
