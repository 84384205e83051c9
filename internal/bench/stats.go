package bench

import (
	"slices"
	"sync"
	"time"
)

// recorder collects the latencies of one run. A nil recorder records
// nothing (warm-ups).
type recorder struct {
	mu     sync.Mutex
	lat    []time.Duration
	errors int
	wrong  []string // a few unexpected replies, for the report
}

func newRecorder(n int) *recorder { return &recorder{lat: make([]time.Duration, 0, n)} }

// ok records a command answered as expected.
func (r *recorder) ok(d time.Duration) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
}

// fail records a command answered with an error or not as expected; its
// latency counts too.
func (r *recorder) fail(d time.Duration, what string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.errors++
	if len(r.wrong) < 5 {
		r.wrong = append(r.wrong, what)
	}
	r.mu.Unlock()
}

// Latency summarises the latencies of a run, in microseconds.
type Latency struct {
	P50 float64 `json:"p50_us"`
	P90 float64 `json:"p90_us"`
	P99 float64 `json:"p99_us"`
	Max float64 `json:"max_us"`
}

func (r *recorder) summary() (n, errors int, lat Latency, wrong []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.lat)
	slices.Sort(s)
	q := func(p float64) float64 {
		if len(s) == 0 {
			return 0
		}
		i := int(p*float64(len(s))+0.5) - 1
		i = min(max(i, 0), len(s)-1)
		return us(s[i])
	}
	lat = Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: q(1)}
	return len(s), r.errors, lat, slices.Clone(r.wrong)
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
