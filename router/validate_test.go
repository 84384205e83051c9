package router_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/sdk/command"
)

// validating serves "register service" with Validate, as registry-cmd
// does: a definition that is not JSON is refused.
type validating struct {
	handler
	validates, execs atomic.Int32
}

var _ command.Validator = (*validating)(nil)

func (v *validating) Validate(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	v.validates.Add(1)
	if !strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(req.GetText(), "register service")), "{") {
		rsp.Error = "the definition is not JSON: it should start with {"
	}
	return nil
}

func newValidating() *validating {
	v := &validating{}
	v.handler = handler{
		help: func(rsp *chatopsv1.HelpResponse) error {
			rsp.Commands = []*chatopsv1.CommandSpec{{Pattern: "register service", Usage: "register service DEFINITION", Description: "registers"}}
			return nil
		},
		exec: func(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
			v.execs.Add(1)
			rsp.Result = []byte("registered")
			return nil
		},
	}
	return v
}

// A command that needs confirmation is validated first: bad input is
// refused at once, with the service's sentence, and nothing waits for a
// yes; good input is asked to be confirmed and runs after the yes.
func TestValidationBeforeConfirmation(t *testing.T) {
	pol, err := policy.Parse([]byte(`
default: allow
rules:
  - name: registrations are confirmed
    commands: ["register service"]
    effect: allow
    confirm: true
`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, router.Config{Policy: pol})
	v := newValidating()
	e.serve("registry", v)
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "register service [definition]") })

	rep := e.ask("register service garbage")
	if want := "register service: the definition is not JSON: it should start with {"; !isError(rep) || string(rep.GetData()) != want {
		t.Errorf("bad input: got %s %q, want error %q", rep.GetType(), rep.GetData(), want)
	}
	if rep := e.ask("yes"); !isError(rep) || !strings.HasPrefix(string(rep.GetData()), "nothing to confirm") {
		t.Errorf("yes after a refusal: got %s %q, want nothing to confirm", rep.GetType(), rep.GetData())
	}
	if n := v.execs.Load(); n != 0 {
		t.Errorf("refused input ran %d times", n)
	}

	rep = e.ask(`register service {"name":"billing"}`)
	if !isReply(rep) || !strings.Contains(string(rep.GetData()), "needs your confirmation") {
		t.Fatalf("good input: got %s %q, want a confirmation asked", rep.GetType(), rep.GetData())
	}
	if rep := e.ask("yes"); !isReply(rep) || string(rep.GetData()) != "registered" {
		t.Errorf("yes: got %s %q", rep.GetType(), rep.GetData())
	}
	if n := v.execs.Load(); n != 1 {
		t.Errorf("confirmed input ran %d times, want 1", n)
	}
	if n := v.validates.Load(); n != 2 {
		t.Errorf("%d validations, want 2 (one a message that needs confirmation)", n)
	}
}
