package directory

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"go-micro.dev/v4/registry"
)

func svc(name string, nodes ...string) *registry.Service {
	s := &registry.Service{Name: name, Version: "latest"}
	for _, n := range nodes {
		s.Nodes = append(s.Nodes, &registry.Node{Id: n, Address: "addr-" + n})
	}
	return s
}

func helpFrom(m map[string]*chatopsv1.HelpResponse) HelpFunc {
	return func(_ context.Context, service string) (*chatopsv1.HelpResponse, error) {
		if rsp, ok := m[service]; ok {
			return rsp, nil
		}
		return nil, errors.New("no help")
	}
}

// started runs a directory on reg until the test ends.
func started(t *testing.T, reg registry.Registry, help HelpFunc) *Directory {
	t.Helper()
	d := New(reg, "go.micro.bot", WithResync(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, help) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-d.Ready()
	return d
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("not within 5s: %s", what)
		}
	}
}

func TestMatchLongestPattern(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	for _, s := range []*registry.Service{svc("go.micro.bot.registry-cmd", "r1"), svc("go.micro.bot.list", "l1"), svc("go.micro.bot.echo", "e1"), svc("other.service", "o1")} {
		if err := reg.Register(s); err != nil {
			t.Fatal(err)
		}
	}
	d := started(t, reg, helpFrom(map[string]*chatopsv1.HelpResponse{
		"go.micro.bot.registry-cmd": {Commands: []*chatopsv1.CommandSpec{
			{Pattern: "list services", Usage: "list services", Description: "lists"},
			{Pattern: "Get Service", Usage: "get service NAME", Description: "gets"},
		}},
		"go.micro.bot.list": {Usage: "list [things]", Description: "lists things"},
	}))
	eventually(t, "help answered", func() bool { return len(d.Commands()) == 4 })
	for _, tc := range []struct {
		words   []string
		service string
		pattern string
	}{
		{[]string{"list", "services"}, "go.micro.bot.registry-cmd", "list services"},
		{[]string{"LIST", "Services", "now"}, "go.micro.bot.registry-cmd", "list services"},
		{[]string{"list", "things"}, "go.micro.bot.list", "list"},
		{[]string{"get", "service", "x"}, "go.micro.bot.registry-cmd", "get service"},
		{[]string{"echo", "hi"}, "go.micro.bot.echo", "echo"},
	} {
		c, ok := d.Match(tc.words)
		if !ok || c.Service != tc.service || c.Pattern() != tc.pattern {
			t.Errorf("Match(%q) = %+v, %v; want %s %q", tc.words, c, ok, tc.service, tc.pattern)
		}
	}
	for _, words := range [][]string{{"get"}, {"registry-cmd"}, {"other.service"}, {"service"}} {
		if c, ok := d.Match(words); ok {
			t.Errorf("Match(%q) = %+v; want no match", words, c)
		}
	}
	var usages []string
	for _, c := range d.Commands() {
		usages = append(usages, c.Usage)
	}
	if want := []string{"echo", "get service NAME", "list [things]", "list services"}; !slices.Equal(usages, want) {
		t.Errorf("commands %q, want %q", usages, want)
	}
}

func TestWatchAddsAndRemovesNodes(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	d := started(t, reg, nil)
	if err := reg.Register(svc("go.micro.bot.echo", "a")); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(svc("go.micro.bot.echo", "b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two nodes", func() bool { return len(d.nodes("go.micro.bot.echo")) == 2 })
	if err := reg.Deregister(svc("go.micro.bot.echo", "a")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one node left", func() bool { return len(d.nodes("go.micro.bot.echo")) == 1 })
	if _, ok := d.Match([]string{"echo"}); !ok {
		t.Fatal("service with a node left was removed")
	}
	if err := reg.Deregister(svc("go.micro.bot.echo", "b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service gone", func() bool { _, ok := d.Match([]string{"echo"}); return !ok })
}

// Sync drops what the registry no longer has, except registrations seen
// after the listing began. (The registry still lists most services: one
// that lacks most is not believed at once, see TestOutage*.)
func TestSyncPrunes(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	if err := reg.Register(svc("go.micro.bot.live", "l1")); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	d := New(reg, "go.micro.bot", WithConfirm(0))
	d.now = func() time.Time { return now }
	d.apply("create", svc("go.micro.bot.live", "l1"))
	d.apply("create", svc("go.micro.bot.ghost", "g1"))
	now = now.Add(time.Second)
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Match([]string{"ghost"}); ok {
		t.Error("a service the registry does not have survived a sync")
	}
	// A registration seen at the time the sync starts is kept.
	d.apply("create", svc("go.micro.bot.fresh", "f1"))
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Match([]string{"fresh"}); !ok {
		t.Error("a registration seen during the sync was dropped")
	}
}

func TestSelectorSkipsNodesMarkedDown(t *testing.T) {
	d := New(registry.NewMemoryRegistry(), "go.micro.bot", WithDownTime(time.Minute), WithWarmup(0))
	d.apply("create", svc("go.micro.bot.echo", "a", "b"))
	sel := d.Selector()
	if _, err := sel.Select("go.micro.bot.nope"); err == nil {
		t.Error("Select of an unknown service succeeded")
	}
	next, err := sel.Select("go.micro.bot.echo")
	if err != nil {
		t.Fatal(err)
	}
	d.MarkDown("go.micro.bot.echo", "a")
	for range 50 {
		n, err := next()
		if err != nil || n.Id != "b" {
			t.Fatalf("next() = %v, %v; want node b only", n, err)
		}
	}
	d.MarkDown("go.micro.bot.echo", "b")
	if n, err := next(); err != nil || n == nil {
		t.Errorf("with every node down, next() = %v, %v; want some node", n, err)
	}
}

func TestLookupFindsUnseenServiceAndCachesMisses(t *testing.T) {
	reg := &countingRegistry{Registry: registry.NewMemoryRegistry()}
	d := New(reg, "go.micro.bot")
	if _, ok := d.Lookup(context.Background(), "echo"); ok {
		t.Fatal("found a service that is not registered")
	}
	if _, ok := d.Lookup(context.Background(), "echo"); ok {
		t.Fatal("found a service that is not registered")
	}
	if reg.gets != 1 {
		t.Errorf("%d registry lookups for two misses within a second, want 1", reg.gets)
	}
	if err := reg.Register(svc("go.micro.bot.echo", "a")); err != nil {
		t.Fatal(err)
	}
	d.misses.Clear()
	if c, ok := d.Lookup(context.Background(), "Echo"); !ok || c.Service != "go.micro.bot.echo" {
		t.Errorf("Lookup after registration = %+v, %v", c, ok)
	}
}

type countingRegistry struct {
	registry.Registry
	gets int
}

func (c *countingRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	c.gets++
	return c.Registry.GetService(name, opts...)
}

// A retry goes to another node; a node that just appeared is not marked
// down (go-micro registers before its transport subscription is live).
func TestSelectorRotatesAndWarmsUp(t *testing.T) {
	d := New(registry.NewMemoryRegistry(), "go.micro.bot", WithWarmup(time.Hour))
	d.apply("create", svc("go.micro.bot.echo", "a", "b", "c"))
	next, err := d.Selector().Select("go.micro.bot.echo")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 3 {
		n, _ := next()
		seen[n.Id] = true
	}
	if len(seen) != 3 {
		t.Errorf("three attempts of one call went to %d nodes, want 3", len(seen))
	}
	d.MarkDown("go.micro.bot.echo", "a")
	if got := len(d.nodes("go.micro.bot.echo")); got != 3 {
		t.Errorf("a node in its warm-up was marked down: %d nodes left", got)
	}
}
