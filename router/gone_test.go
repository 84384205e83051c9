package router_test

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
	"go-micro.dev/v4/registry"
)

// A command whose service was removed is "gone", with the service and
// when it was last seen, for one-word and multi-word commands; a command
// this router never saw stays unknown, and one the user may not run is
// not revealed.
func TestRemovedServiceIsGone(t *testing.T) {
	pol, err := policy.Parse([]byte(`
default: allow
rules:
  - name: no listing for U9
    commands: ["list services"]
    users: ["test:U9"]
    effect: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, router.Config{Policy: pol})
	stopShout := e.serve("shout", handler{
		help: func(rsp *chatopsv1.HelpResponse) error {
			rsp.Usage, rsp.Description = "shout [text]", "Shouts the [text]"
			return nil
		},
		exec: func(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
			return echo.Handler{}.Exec(ctx, req, rsp)
		},
	})
	stopRegistry := e.serve("registry", registryLike())
	waitFor(t, func() bool {
		h := string(e.ask("help").GetData())
		return strings.Contains(h, "shout") && strings.Contains(h, "list services")
	})
	if rep := e.ask("shout hi"); !isReply(rep) || string(rep.GetData()) != "hi" {
		t.Fatalf("shout hi: %s %q", rep.GetType(), rep.GetData())
	}
	stopShout()
	stopRegistry()
	waitFor(t, func() bool {
		h := string(e.ask("help").GetData())
		return !strings.Contains(h, "shout") && !strings.Contains(h, "list services")
	})
	for in, want := range map[string]*regexp.Regexp{
		"shout hi":            regexp.MustCompile(`^"shout" is gone: go\.micro\.bot\.shout was last seen \d+s ago\. Type help for the list of commands\.$`),
		"SHOUT":               regexp.MustCompile(`^"shout" is gone: go\.micro\.bot\.shout was last seen \d+s ago\.`),
		"list services":       regexp.MustCompile(`^"list services" is gone: go\.micro\.bot\.registry was last seen \d+s ago\.`),
		"get service billing": regexp.MustCompile(`^"get service" is gone: go\.micro\.bot\.registry was last seen \d+s ago\.`),
		"help shout":          regexp.MustCompile(`^"shout" is gone: go\.micro\.bot\.shout was last seen \d+s ago\.`),
		"help list services":  regexp.MustCompile(`^"list services" is gone: go\.micro\.bot\.registry was last seen \d+s ago\.`),
		"whisper hi":          regexp.MustCompile(`^unknown command "whisper hi"\.`),
		"list":                regexp.MustCompile(`^unknown command "list"\.`),
	} {
		if rep := e.ask(in); !isError(rep) || !want.MatchString(string(rep.GetData())) {
			t.Errorf("%q: got %s %q, want error matching %s", in, rep.GetType(), rep.GetData(), want)
		}
	}
	if rep := e.askAs("U9", "list services"); !isError(rep) || !strings.HasPrefix(string(rep.GetData()), `unknown command "list services"`) {
		t.Errorf("a user who may not list services: got %s %q, want it unknown", rep.GetType(), rep.GetData())
	}
}

// lateRegistry answers the first lookup of its late service with "not
// found" and registers the service meanwhile: a service that starts while
// the router asks the registry about it.
type lateRegistry struct {
	registry.Registry
	late *registry.Service
	once sync.Once
}

func (l *lateRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	first := false
	if name == l.late.Name {
		l.once.Do(func() { first = true })
	}
	if !first {
		return l.Registry.GetService(name, opts...)
	}
	if err := l.Registry.Register(l.late); err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // its registration reaches the router's directory meanwhile
	return nil, registry.ErrNotFound
}

// A command whose service registers while the router asks the registry
// about it runs: it is neither unknown nor "gone" (e2e once got `"echo" is
// gone: … last seen 0s ago` for a service that had just started).
func TestServiceFoundDuringItsLookupRuns(t *testing.T) {
	s := meshtest.NATS(t)
	svc, _ := (&env{t: t, s: s}).nodeOver("late", "nats", "on time")
	reg := &lateRegistry{Registry: meshtest.Mesh(t, s, nil).Registry(), late: svc}
	e := newEnvOn(t, s, router.Config{}, mesh.WithRegistry(reg))
	if rep := e.ask("late hi"); !isReply(rep) || string(rep.GetData()) != "on time" {
		t.Fatalf("late hi: %s %q", rep.GetType(), rep.GetData())
	}
}
