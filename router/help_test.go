package router_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/services/echo"
)

// registryLike serves "list services" and "get service", as
// services/registry-cmd does; its Exec answers with the words it got.
func registryLike() handler {
	return handler{
		help: func(rsp *chatopsv1.HelpResponse) error {
			rsp.Commands = []*chatopsv1.CommandSpec{
				{Pattern: "list services", Usage: "list services", Description: "Lists the registered services with their node counts"},
				{Pattern: "get service", Usage: "get service NAME", Description: "Shows a service's versions, nodes and endpoints"},
			}
			return nil
		},
		exec: func(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
			rsp.Result = []byte("ran " + strings.Join(req.Args, " ") + " (text " + req.Text + ")")
			return nil
		},
	}
}

// helpEnv is a router with echo and the registry-like service, once help
// lists both.
func helpEnv(t *testing.T, cfg router.Config) *env {
	e := newEnv(t, cfg)
	e.serve("echo", echo.Handler{})
	e.serve("registry", registryLike())
	waitFor(t, func() bool {
		h := string(e.ask("help").GetData())
		return strings.Contains(h, "echo [text]") && strings.Contains(h, "get service NAME")
	})
	return e
}

func TestHelpCommand(t *testing.T) {
	e := helpEnv(t, router.Config{})
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{in: "help echo", want: "echo [text] - Returns the [text]"},
		{in: "HELP Echo", want: "echo [text] - Returns the [text]"},
		{in: "help ping", want: "ping - Returns pong"},
		{in: "help the three laws", want: "the three laws - Returns the three laws of robotics"},
		{in: "help three laws", want: "the three laws - Returns the three laws of robotics"},
		{in: "help help", want: "help [COMMAND] - Displays help for all known commands, or the usage of COMMAND"},
		{in: "help list services", want: "list services - Lists the registered services with their node counts"},
		{in: "help get service", want: "get service NAME - Shows a service's versions, nodes and endpoints"},
		{in: "help every", want: "every DURATION COMMAND - Runs COMMAND every DURATION (at least 1s)"},
		{in: "help unschedule", want: "unschedule ID - Removes a schedule you set"},
		{in: "help watching", want: "watching - Lists what this conversation watches"},
		{in: "help list", err: true, want: `There is no command "list". Did you mean "list services"? Type help for the list of commands.`},
		{in: "help list service", err: true, want: `There is no command "list service". Did you mean "list services"? Type help for the list of commands.`},
		{in: "help ecko", err: true, want: `There is no command "ecko". Did you mean "echo"? Type help for the list of commands.`},
		{in: "help deploy now", err: true, want: `There is no command "deploy now". Type help for the list of commands.`},
	} {
		rep := e.ask(tc.in)
		if isError(rep) != tc.err || string(rep.GetData()) != tc.want {
			t.Errorf("%q: got %s %q, want (error %v) %q", tc.in, rep.GetType(), rep.GetData(), tc.err, tc.want)
		}
	}
}

func TestMicroPrefix(t *testing.T) {
	e := helpEnv(t, router.Config{})
	help := string(e.ask("help").GetData())
	for _, in := range []string{"micro help", "Micro", "MICRO  help "} {
		if rep := e.ask(in); !isReply(rep) || string(rep.GetData()) != help {
			t.Errorf("%q: got %s %q, want the help", in, rep.GetType(), rep.GetData())
		}
	}
	for in, want := range map[string]string{
		"micro ping":                "pong",
		"micro echo hi there":       "hi there",
		"micro help list services":  "list services - Lists the registered services with their node counts",
		"micro list services":       "ran list services (text list services)",
		"micro get service greeter": "ran get service greeter (text get service greeter)",
	} {
		if rep := e.ask(in); !isReply(rep) || string(rep.GetData()) != want {
			t.Errorf("%q: got %s %q, want reply %q", in, rep.GetType(), rep.GetData(), want)
		}
	}
	want := `unknown command "lst". Did you mean "list services"? Type help for the list of commands.`
	if rep := e.ask("micro lst services"); !isError(rep) || string(rep.GetData()) != want {
		t.Errorf("micro lst services: got %s %q, want error %q", rep.GetType(), rep.GetData(), want)
	}
}

func TestUnknownMultiWord(t *testing.T) {
	e := helpEnv(t, router.Config{})
	for in, want := range map[string]string{
		"list":          `unknown command "list". Did you mean "list services"? Type help for the list of commands.`,
		"list service":  `unknown command "list". Did you mean "list services"? Type help for the list of commands.`,
		"get":           `unknown command "get". Did you mean "get service"? Type help for the list of commands.`,
		"the three law": `unknown command "the". Did you mean "the three laws"? Type help for the list of commands.`,
		"ecko hi":       `unknown command "ecko". Did you mean "echo"? Type help for the list of commands.`,
		"deploy x":      `unknown command "deploy". Type help for the list of commands.`,
	} {
		rep := e.ask(in)
		if !isError(rep) || string(rep.GetData()) != want {
			t.Errorf("%q: got %s %q, want error %q", in, rep.GetType(), rep.GetData(), want)
		}
	}
}

// A command help does not list for the user is not described to them.
func TestHelpCommandFollowsPolicy(t *testing.T) {
	pol, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, router.Config{Policy: pol})
	var runs atomic.Int32
	e.serve("registry", registryCmd(&runs))
	waitFor(t, func() bool {
		return strings.Contains(string(e.askAs("UADMIN", "help").GetData()), "deregister service NAME")
	})
	if rep := e.askAs("UADMIN", "help deregister service"); !isReply(rep) || string(rep.GetData()) != "deregister service NAME - removes a service" {
		t.Errorf("admin: got %s %q", rep.GetType(), rep.GetData())
	}
	want := `There is no command "deregister service". Type help for the list of commands.`
	if rep := e.askAs("U1", "help deregister service"); !isError(rep) || string(rep.GetData()) != want {
		t.Errorf("other user: got %s %q, want error %q", rep.GetType(), rep.GetData(), want)
	}
}
