package directory

import (
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"go-micro.dev/v4/registry"
)

// What the directory removes it remembers as gone, when it removes it:
// the commands of a service whose last node left. The name a
// service is called by until its Help answers is not gone once Help
// replaces it, and a command served again is no longer gone.
func TestGoneCommands(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	helps := map[string]*chatopsv1.HelpResponse{
		"go.micro.bot.registry-cmd": {Commands: []*chatopsv1.CommandSpec{
			{Pattern: "list services", Usage: "list services"},
			{Pattern: "get service", Usage: "get service NAME"},
		}},
	}
	d := started(t, reg, helpFrom(helps))
	if err := reg.Register(svc("go.micro.bot.registry-cmd", "r1")); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(svc("go.micro.bot.shout", "s1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "help answered", func() bool { _, ok := d.Match([]string{"list", "services"}); return ok && has(d, "shout") })
	if g, ok := d.Gone([]string{"registry-cmd"}); ok {
		t.Errorf("the name used until Help answered is gone: %+v", g)
	}

	before := time.Now()
	if err := reg.Deregister(svc("go.micro.bot.shout", "s1")); err != nil {
		t.Fatal(err)
	}
	// Gone from the moment it is not served: no tick is waited for.
	eventually(t, "shout removed", func() bool { return !has(d, "shout") })
	g, ok := d.Gone([]string{"SHOUT", "hi"})
	if !ok || g.Service != "go.micro.bot.shout" || g.Pattern() != "shout" || g.Last.Before(before) || time.Since(g.Last) > 5*time.Second {
		t.Errorf("Gone(shout hi) = %+v, %v; want shout, last seen when it left", g, ok)
	}
	if g, ok := d.Gone([]string{"whisper"}); ok {
		t.Errorf("Gone(whisper), never served: %+v", g)
	}

	// Served again: not gone.
	if err := reg.Register(svc("go.micro.bot.shout", "s2")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "shout back", func() bool { return has(d, "shout") })
	if g, ok := d.Gone([]string{"shout"}); ok {
		t.Errorf("shout is served again but gone: %+v", g)
	}

	// The longest gone pattern wins.
	if err := reg.Deregister(svc("go.micro.bot.registry-cmd", "r1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "registry-cmd removed", func() bool { _, ok := d.Match([]string{"get", "service"}); return !ok })
	if g, ok := d.Gone([]string{"get", "service", "x"}); !ok || g.Pattern() != "get service" {
		t.Errorf("Gone(get service x) = %+v, %v", g, ok)
	}
}
