package query_test

import (
	"context"
	"sync/atomic"
	"testing"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/query"
)

// countingCommand is a command service that counts its Exec calls.
type countingCommand struct{ execs atomic.Int32 }

func (c *countingCommand) Help(context.Context, *chatopsv1.HelpRequest, *chatopsv1.HelpResponse) error {
	return nil
}

func (c *countingCommand) Exec(_ context.Context, _ *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	c.execs.Add(1)
	rsp.Result = []byte("registered")
	return nil
}

// query never calls a command service: `query go.micro.bot.registry
// Command.Exec {…}` would run register service without the policy's
// confirmation. The user is told to run the command itself, and the
// service is not called.
func TestQueryRefusesCommandServices(t *testing.T) {
	ns := meshtest.NATS(t)
	m := meshtest.Mesh(t, ns, nil)
	reg := &countingCommand{}
	svc, err := command.New(meshtest.Mesh(t, ns, nil), "registry", reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })

	for _, h := range []*query.Handler{
		query.New(m.Registry(), m.NewClient(), query.WithLogger(meshtest.Logger(t))),
		query.New(m.Registry(), m.NewClient(), query.WithNamespace(m.Namespace())),
	} {
		for _, text := range []string{
			`query go.micro.bot.registry Command.Exec {"args":["register","service","{}"]}`,
			`query GO.MICRO.BOT.Registry Command.Exec {}`,
			`query go.micro.bot.anything Command.Help {}`,
		} {
			_, errText := say(t, h, text)
			if want := "query does not call command services such as "; len(errText) < len(want) || errText[:len(want)] != want {
				t.Errorf("%s: error %q, want one starting %q", text, errText, want)
			}
		}
	}
	if n := reg.execs.Load(); n != 0 {
		t.Errorf("the command service was called %d times", n)
	}
	// Another namespace: its command services are refused, and the
	// default one's are ordinary services.
	other := query.New(m.Registry(), m.NewClient(), query.WithNamespace("example.bots"))
	if _, errText := say(t, other, `query example.bots.deploy Command.Exec {}`); errText == "" || errText[:5] != "query" {
		t.Errorf("other namespace: %q", errText)
	}
	if _, errText := say(t, other, `query go.micro.bot.registry Command.Exec {}`); errText != "" {
		t.Errorf("outside its namespace: %q", errText)
	}
	if n := reg.execs.Load(); n != 1 {
		t.Errorf("a service outside the namespace was called %d times, want 1", n)
	}
}
