package adapter_test

import (
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// named is an input that only has a name.
type named struct{ name string }

func (n *named) String() string                                { return n.name }
func (n *named) Run(ctx context.Context, _ adapter.Emit) error { <-ctx.Done(); return nil }
func (n *named) Send(context.Context, *chatopsv1.Event) error  { return nil }
func (n *named) Flags(*flag.FlagSet)                           {}
func (n *named) Init(adapter.Env) error                        { return nil }

func registry() adapter.Registry {
	r := adapter.Registry{}
	for _, n := range []string{"slack", "xmpp"} {
		r.Register(n, func() adapter.Configurable { return &named{n} })
	}
	return r
}

// The Micro Bot's command line, --inputs=hipchat,slack, starts the xmpp
// and slack inputs (HipChat spoke XMPP).
func TestSelectTakesTheMicroBotsNames(t *testing.T) {
	ins, err := registry().Instantiate().Select("hipchat,slack", adapter.Env{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range ins {
		got = append(got, in.String())
	}
	if strings.Join(got, ",") != "xmpp,slack" {
		t.Errorf("--inputs=hipchat,slack started %v, want xmpp and slack", got)
	}
	if _, err := registry().Instantiate().Select("hipchat,xmpp", adapter.Env{}); err == nil || !strings.Contains(err.Error(), `"xmpp" listed twice`) {
		t.Errorf("--inputs=hipchat,xmpp: %v, want the input listed twice", err)
	}
	if _, err := registry().Instantiate().Select("hipchatt", adapter.Env{}); err == nil || !strings.Contains(err.Error(), `unknown input "hipchatt" (available: slack, xmpp)`) {
		t.Errorf("--inputs=hipchatt: %v, want unknown input", err)
	}
}
