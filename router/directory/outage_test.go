package directory

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
)

// outageRegistry is a memory registry that can fail as go-micro's NATS
// registry does while its connection is down: listings and lookups come
// back empty without an error (its query gets no answers in 100ms), or
// fail. It can also hide a service, as the NATS registry does when the
// process is killed -9 (no deregistration: nothing answers for it).
type outageRegistry struct {
	registry.Registry
	mode   atomic.Value // "" (up), "empty" or "error"
	mu     sync.Mutex
	hidden map[string]bool
}

func newOutageRegistry() *outageRegistry {
	r := &outageRegistry{Registry: registry.NewMemoryRegistry(), hidden: map[string]bool{}}
	r.mode.Store("")
	return r
}

var errDown = errors.New("nats: connection closed")

func (r *outageRegistry) hide(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hidden[name] = true
}

func (r *outageRegistry) isHidden(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hidden[name]
}

func (r *outageRegistry) ListServices(opts ...registry.ListOption) ([]*registry.Service, error) {
	switch r.mode.Load() {
	case "empty":
		return nil, nil
	case "error":
		return nil, errDown
	}
	all, err := r.Registry.ListServices(opts...)
	var out []*registry.Service
	for _, s := range all {
		if !r.isHidden(s.Name) {
			out = append(out, s)
		}
	}
	return out, err
}

func (r *outageRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	switch r.mode.Load() {
	case "empty":
		return nil, nil
	case "error":
		return nil, errDown
	}
	if r.isHidden(name) {
		return nil, registry.ErrNotFound
	}
	return r.Registry.GetService(name, opts...)
}

// runDirectory runs a directory with opts on reg until the test ends.
func runDirectory(t *testing.T, reg registry.Registry, opts ...Option) *Directory {
	t.Helper()
	d := New(reg, "go.micro.bot", opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-d.Ready()
	return d
}

func has(d *Directory, command string) bool {
	_, ok := d.Match([]string{command})
	return ok
}

// holds checks for about dur that cond holds all along.
func holds(t *testing.T, dur time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(dur); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if !cond() {
			t.Fatalf("no longer true: %s", what)
		}
	}
}

// Without a view of the NATS connection (the default), a registry that
// answers empty listings or errors, as the NATS registry does while NATS
// is down, removes nothing, however many resyncs; a service killed -9
// while the registry works still leaves, at the resync after it, and
// listings that lack every service for longer than the outage grace are
// believed in the end.
func TestOutageWithoutConnectionState(t *testing.T) {
	for _, mode := range []string{"empty", "error"} {
		t.Run(mode, func(t *testing.T) {
			reg := newOutageRegistry()
			for _, s := range []*registry.Service{svc("go.micro.bot.echo", "e1"), svc("go.micro.bot.query", "q1", "q2"), svc("go.micro.bot.registry-cmd", "r1")} {
				if err := reg.Register(s); err != nil {
					t.Fatal(err)
				}
			}
			const resync, confirm = 20 * time.Millisecond, 10 * time.Millisecond
			// The grace leaves a second of margin to the checks below: a loaded
			// machine (go test -race of every package at once) may delay a
			// resync by hundreds of milliseconds.
			d := runDirectory(t, reg, WithResync(resync), WithConfirm(confirm), WithOutageGrace(2*time.Second))
			if d.Services() != 3 {
				t.Fatalf("%d services at start, want 3", d.Services())
			}

			reg.mode.Store(mode) // NATS goes down
			holds(t, 500*time.Millisecond, "every service kept during the outage (25 resyncs)", func() bool { return d.Services() == 3 && len(d.nodes("go.micro.bot.query")) == 2 })
			reg.mode.Store("") // and comes back
			holds(t, 100*time.Millisecond, "every service kept after it", func() bool { return d.Services() == 3 })

			// kill -9 of echo: the registry lists the others.
			reg.hide("go.micro.bot.echo")
			start := time.Now()
			eventually(t, "a killed service leaves", func() bool { return !has(d, "echo") })
			if took := time.Since(start); took > 10*resync+confirm+500*time.Millisecond {
				t.Errorf("a killed service left after %s, want about a resync and a confirmation", took)
			}
			if !has(d, "query") || !has(d, "registry-cmd") {
				t.Error("the live services left with the killed one")
			}

			// An outage longer than the grace: the listings are believed.
			if mode == "empty" {
				reg.mode.Store(mode)
				holds(t, time.Second, "kept within the grace", func() bool { return d.Services() == 2 })
				eventually(t, "gone after the grace", func() bool { return d.Services() == 0 })
			}
		})
	}
}

// A service deregistered leaves at once, outage or not.
func TestDeregisterLeavesAtOnce(t *testing.T) {
	reg := newOutageRegistry()
	if err := reg.Register(svc("go.micro.bot.echo", "e1")); err != nil {
		t.Fatal(err)
	}
	d := runDirectory(t, reg, WithResync(time.Hour))
	if err := reg.Deregister(svc("go.micro.bot.echo", "e1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deregistered service gone", func() bool { return !has(d, "echo") })
}

// With the connection's state (WithConnected), listings taken while it is
// down or settling remove nothing, and the directory says calls are worth
// retrying; once it has settled, a single service killed -9 leaves after
// the (settle-long) grace.
func TestOutageWithConnectionState(t *testing.T) {
	reg := newOutageRegistry()
	if err := reg.Register(svc("go.micro.bot.echo", "e1")); err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	up.Store(true)
	const settle = 400 * time.Millisecond
	d := runDirectory(t, reg, WithConnected(up.Load), WithSettle(settle), WithResync(20*time.Millisecond), WithConfirm(10*time.Millisecond))
	if !has(d, "echo") || d.Settling() {
		t.Fatalf("at start: echo known %v, settling %v", has(d, "echo"), d.Settling())
	}
	if d.WorthRetrying("go.micro.bot.echo") {
		t.Error("worth retrying a node that never answered, with NATS steady")
	}
	if d.WorthRetrying("go.micro.bot.nope") {
		t.Error("worth retrying an unknown service")
	}

	up.Store(false)
	reg.mode.Store("empty")
	eventually(t, "settling seen", d.Settling)
	if !d.WorthRetrying("go.micro.bot.echo") {
		t.Error("not worth retrying while NATS is down")
	}
	holds(t, 300*time.Millisecond, "echo kept while NATS is down", func() bool { return has(d, "echo") })

	// Back, but the services have not answered the registry yet.
	up.Store(true)
	holds(t, settle/2, "echo kept just after the reconnect", func() bool { return has(d, "echo") && d.Settling() })
	reg.mode.Store("")
	eventually(t, "settled", func() bool { return !d.Settling() })
	holds(t, 100*time.Millisecond, "echo kept after it settled", func() bool { return has(d, "echo") })

	// A node that answered is worth retrying: it is more likely
	// reconnecting than gone.
	d.MarkUp("go.micro.bot.echo", "e1")
	if !d.WorthRetrying("go.micro.bot.echo") {
		t.Error("not worth retrying a node that answered")
	}

	// kill -9 of the only service: the (empty) listing is believed once
	// it has lasted the grace, the settle time.
	reg.hide("go.micro.bot.echo")
	start := time.Now()
	eventually(t, "killed service gone", func() bool { return !has(d, "echo") })
	if took := time.Since(start); took < settle {
		t.Errorf("the only service left %s after a listing lacked it, before the %s grace", took, settle)
	}
}

// Sync keeps a node that one listing lacks but the confirming one has (a
// slow answer to the registry's query), and drops one both lack.
func TestSyncConfirms(t *testing.T) {
	reg := newOutageRegistry()
	for _, s := range []*registry.Service{svc("go.micro.bot.a", "a1"), svc("go.micro.bot.b", "b1"), svc("go.micro.bot.c", "c1")} {
		if err := reg.Register(s); err != nil {
			t.Fatal(err)
		}
	}
	d := New(reg, "go.micro.bot", WithConfirm(200*time.Millisecond))
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.apply("create", svc("go.micro.bot.ghost", "g1"))
	time.Sleep(10 * time.Millisecond)

	// b misses the first listing only.
	reg.hide("go.micro.bot.b")
	go func() {
		time.Sleep(50 * time.Millisecond)
		reg.mu.Lock()
		delete(reg.hidden, "go.micro.bot.b")
		reg.mu.Unlock()
	}()
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !has(d, "b") {
		t.Error("a service the confirming listing had was dropped")
	}
	if has(d, "ghost") {
		t.Error("a service both listings lacked was kept")
	}
}

// Once the connection has settled after an outage, the directory checks
// its view at once (not at the next hourly resync): a service that left
// during the outage is dropped, after the settle time. The connection is
// polled, or, with WithConnectionChanges, looked at when it changes.
func TestResyncOnceSettled(t *testing.T) {
	for _, withChanges := range []bool{false, true} {
		name := "polled"
		if withChanges {
			name = "told of changes"
		}
		t.Run(name, func(t *testing.T) {
			reg := newOutageRegistry()
			for _, s := range []*registry.Service{svc("go.micro.bot.echo", "e1"), svc("go.micro.bot.a", "a1"), svc("go.micro.bot.b", "b1")} {
				if err := reg.Register(s); err != nil {
					t.Fatal(err)
				}
			}
			var up atomic.Bool
			up.Store(true)
			changes := make(chan struct{}, 1)
			set := func(v bool) {
				up.Store(v)
				if withChanges {
					changes <- struct{}{}
				}
			}
			const settle = 300 * time.Millisecond
			opts := []Option{WithConnected(up.Load), WithSettle(settle), WithResync(time.Hour), WithConfirm(10 * time.Millisecond)}
			if withChanges {
				opts = append(opts, WithConnectionChanges(changes))
			}
			d := runDirectory(t, reg, opts...)
			if !has(d, "echo") {
				t.Fatal("echo not known at start")
			}
			set(false)
			eventually(t, "settling seen", d.Settling)
			reg.hide("go.micro.bot.echo") // left during the outage
			set(true)
			back := time.Now()
			eventually(t, "echo dropped once settled", func() bool { return !has(d, "echo") })
			if took := time.Since(back); took < settle {
				t.Errorf("echo dropped %s after the connection came back, before the %s settle time", took, settle)
			}
			if !has(d, "a") || !has(d, "b") {
				t.Error("a service still there was dropped")
			}
		})
	}
}
