package registrycmd_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/greeter"
	registrycmd "github.com/botmesh/botmesh/services/registry-cmd"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
)

// say runs one chat message through the handler as a botmesh router sends
// it and returns what the user reads: the result, or the error.
func say(t *testing.T, h chatopsv1.CommandHandler, text string) (string, string) {
	t.Helper()
	words := strings.Fields(text)
	cmd := strings.ToLower(strings.Join(words[:min(2, len(words))], " "))
	rsp := &chatopsv1.ExecResponse{}
	if err := h.Exec(context.Background(), &chatopsv1.ExecRequest{Args: words, Text: text, Command: cmd}, rsp); err != nil {
		t.Fatalf("%s: Exec failed: %v", text, err)
	}
	return string(rsp.Result), rsp.Error
}

func wantResult(t *testing.T, h chatopsv1.CommandHandler, text, want string) {
	t.Helper()
	got, errText := say(t, h, text)
	if errText != "" || got != want {
		t.Errorf("%s:\n%s\n(error %q)\nwant:\n%s", text, got, errText, want)
	}
}

func wantError(t *testing.T, h chatopsv1.CommandHandler, text, want string) {
	t.Helper()
	got, errText := say(t, h, text)
	if errText != want {
		t.Errorf("%s: error\n%s\n(result %q)\nwant\n%s", text, errText, got, want)
	}
}

// startGreeter runs a greeter node on its own mesh (as its own process
// would) and returns its server.
func startGreeter(t *testing.T, natsURL string) server.Server {
	t.Helper()
	s := meshtest.Mesh(t, nil, func(c *mesh.Config) { c.NATSURL = natsURL })
	srv, err := greeter.New(s, greeter.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	meshtest.WaitRegistered(t, s.Registry(), greeter.Name, greeter.Name+"-"+srv.Options().Id)
	return srv
}

// The four commands against the NATS registry, with two real greeter nodes
// registered by other "processes" (meshes).
func TestRegistryCommandsNATS(t *testing.T) {
	ns := meshtest.NATS(t)
	g1 := startGreeter(t, ns.ClientURL())
	g2 := startGreeter(t, ns.ClientURL())
	m := meshtest.Mesh(t, ns, nil)
	h := registrycmd.New(m.Registry(), registrycmd.WithLogger(meshtest.Logger(t)))

	wantResult(t, h, "list services", "1 service:\ngreeter (2 nodes)")

	type node struct{ id, addr string }
	nodes := []node{
		{greeter.Name + "-" + g1.Options().Id, g1.Options().Address},
		{greeter.Name + "-" + g2.Options().Id, g2.Options().Address},
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].id < nodes[j].id })
	var want strings.Builder
	want.WriteString("greeter\nversion 1.0.0\n2 nodes:")
	for _, n := range nodes {
		fmt.Fprintf(&want, "\n• %s\n  address: %s\n  metadata: botmesh-replay=1, broker=memory, protocol=mucp, registry=nats, server=mucp, transport=nats", n.id, n.addr)
	}
	want.WriteString("\n1 endpoint:\n• Greeter.Hello\n  request: HelloRequest {name string}\n  response: HelloResponse {message string}")
	wantResult(t, h, "get service greeter", want.String())
	wantResult(t, h, "GET Service greeter", want.String())

	wantError(t, h, "get service greter", `unknown service "greter". Did you mean "greeter"? Type list services to see them all.`)
	wantError(t, h, "get service greet", `unknown service "greet". Did you mean "greeter"? Type list services to see them all.`)
	wantError(t, h, "get service nothing-like-it", `unknown service "nothing-like-it". Type list services to see them all.`)
	wantError(t, h, "get service", "which service? Usage: get service [name] (list services shows the names)")
	wantError(t, h, "get service greeter extra", "get service takes one [name], not 2 words")
	wantError(t, h, "list services greeter", "list services takes no arguments; to see one service, type get service greeter")

	// register, list shows it, get shows it, deregister, gone.
	wantResult(t, h, `register service {"name":"billing","version":"1.0.0","nodes":[{"id":"billing-1","address":"10.0.0.5:9090"}]}`,
		"Registered billing version 1.0.0 with 1 node: billing-1 at 10.0.0.5:9090.\nWith the nats registry it stays registered while this registry service runs.")
	wantResult(t, h, "list services", "2 services:\nbilling (1 node)\ngreeter (2 nodes)")
	wantResult(t, h, "get service billing", "billing\nversion 1.0.0\n1 node:\n• billing-1\n  address: 10.0.0.5:9090\nno endpoints listed")
	// Another registry client (a router, the micro CLI) sees it too.
	other := registrycmd.New(meshtest.Mesh(t, ns, nil).Registry())
	wantResult(t, other, "list services", "2 services:\nbilling (1 node)\ngreeter (2 nodes)")

	wantError(t, h, `deregister service {"name":"billing","nodes":[{"id":"billing-9"}]}`, `billing has no node "billing-9"; its nodes: billing-1`)
	wantResult(t, h, "deregister service\n```json\n{\"name\": \"billing\",\n \"nodes\": [{\"id\": \"billing-1\"}]}\n```",
		"Deregistered billing: 1 node (billing-1). It has no nodes left.")
	wantResult(t, h, "list services", "1 service:\ngreeter (2 nodes)")
	wantError(t, h, "get service billing", `unknown service "billing". Type list services to see them all.`)
	wantError(t, h, `deregister service {"name":"billing","nodes":[{"id":"billing-1"}]}`, `unknown service "billing". Type list services to see them all.`)

	// A node registered by another process cannot be removed from here
	// with the nats registry: the answer says so, and nothing is lost.
	wantError(t, h, fmt.Sprintf(`deregister service {"name":"greeter","nodes":[{"id":%q}]}`, nodes[0].id),
		fmt.Sprintf("greeter node %s is still registered: with the nats registry only the process that registered a node can remove it; stop that process (or deregister from the registry service that registered it)", nodes[0].id))
	wantResult(t, h, "list services", "1 service:\ngreeter (2 nodes)")

	// Bad input.
	wantError(t, h, "register service", "a DEFINITION is needed: a go-micro service in JSON, e.g. "+registrycmd.Example)
	wantError(t, h, `register service {"name":"billing","nodes":[{"id":"b-1","address":"x:1"}],}`,
		"malformed JSON at line 1, column 58: invalid character '}' looking for beginning of object key string (near `ss\":\"x:1\"}],}`)")
	wantError(t, h, `register service {"name":"go.micro.bot.evil","nodes":[{"id":"e-1","address":"10.6.6.6:1"}]}`,
		"go.micro.bot.evil is in the namespace of botmesh commands (go.micro.bot.*): commands are added by running their service, not from chat")
	wantError(t, h, `deregister service {"name":"go.micro.bot.echo","nodes":[{"id":"e-1"}]}`,
		"go.micro.bot.echo is in the namespace of botmesh commands (go.micro.bot.*): stop its service to remove it")
	wantResult(t, h, "list services", "1 service:\ngreeter (2 nodes)")
	wantError(t, h, "remove service greeter", `this service serves list services, get service, register service and deregister service, not "remove service"`)
}

// A Micro Bot router sends only the words: the commands still work.
func TestMicroBotRouter(t *testing.T) {
	ns := meshtest.NATS(t)
	startGreeter(t, ns.ClientURL())
	h := registrycmd.New(meshtest.Mesh(t, ns, nil).Registry())
	rsp := &chatopsv1.ExecResponse{}
	if err := h.Exec(context.Background(), &chatopsv1.ExecRequest{Args: []string{"list", "services"}}, rsp); err != nil || string(rsp.Result) != "1 service:\ngreeter (1 node)" {
		t.Errorf("list services: %q %q %v", rsp.Result, rsp.Error, err)
	}
}

// help lists every pattern the service serves.
func TestHelp(t *testing.T) {
	rsp := &chatopsv1.HelpResponse{}
	if err := registrycmd.New(nil).Help(context.Background(), &chatopsv1.HelpRequest{}, rsp); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rsp.Commands {
		got = append(got, c.Pattern+" = "+c.Usage)
	}
	want := "list services = list services|get service = get service [name]|register service = register service [definition]|deregister service = deregister service [definition]"
	if strings.Join(got, "|") != want {
		t.Errorf("commands %v", got)
	}
}

// failingRegistry is a registry whose every operation fails, as one that
// is down does.
type failingRegistry struct{ registry.Registry }

func (failingRegistry) ListServices(...registry.ListOption) ([]*registry.Service, error) {
	return nil, errors.New("connection refused")
}

func (failingRegistry) GetService(string, ...registry.GetOption) ([]*registry.Service, error) {
	return nil, errors.New("connection refused")
}

func (failingRegistry) Register(*registry.Service, ...registry.RegisterOption) error {
	return errors.New("connection refused")
}

func (failingRegistry) String() string { return "etcd" }

// A registry that fails gets a sentence naming what could not be done.
func TestRegistryDown(t *testing.T) {
	h := registrycmd.New(failingRegistry{})
	wantError(t, h, "list services", "the registry could not list services: connection refused")
	wantError(t, h, "get service greeter", "the registry could not get service greeter: connection refused")
	wantError(t, h, `register service {"name":"billing","nodes":[{"id":"b-1","address":"10.0.0.5:9090"}]}`, "the registry could not register billing: connection refused")
	wantError(t, h, `deregister service {"name":"billing","nodes":[{"id":"b-1"}]}`, "the registry could not get service billing: connection refused")
}

// Every example help shows works as shown, in order (register, get, list,
// deregister), on a memory registry.
func TestHelpExamplesRun(t *testing.T) {
	rsp := &chatopsv1.HelpResponse{}
	h := registrycmd.New(registry.NewMemoryRegistry())
	if err := h.Help(context.Background(), &chatopsv1.HelpRequest{}, rsp); err != nil {
		t.Fatal(err)
	}
	examples := map[string]string{}
	for _, c := range rsp.Commands {
		_, ex, ok := strings.Cut(c.Description, "\nExample: ")
		if !ok {
			t.Fatalf("%s: no example in %q", c.Pattern, c.Description)
		}
		examples[c.Pattern] = strings.ReplaceAll(ex, "get service greeter", "get service billing")
	}
	for _, p := range []string{registrycmd.CmdRegister, registrycmd.CmdGet, registrycmd.CmdList, registrycmd.CmdDeregister} {
		out, errText := say(t, h, examples[p])
		if errText != "" || out == "" {
			t.Errorf("example %q: %q (error %q)", examples[p], out, errText)
		}
	}
}

// Validate refuses what Exec would refuse, with the same sentence, and
// changes nothing; what Exec would run it accepts.
func TestValidate(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	h := registrycmd.New(reg)
	validate := func(text string) string {
		t.Helper()
		words := strings.Fields(text)
		rsp := &chatopsv1.ExecResponse{}
		if err := h.Validate(context.Background(), &chatopsv1.ExecRequest{Args: words, Text: text, Command: strings.ToLower(strings.Join(words[:2], " "))}, rsp); err != nil {
			t.Fatalf("%s: Validate failed: %v", text, err)
		}
		return rsp.Error
	}
	for _, text := range []string{
		"register service garbage",
		"register service",
		`register service {"name":"go.micro.bot.evil","nodes":[{"id":"e1","address":"10.0.0.1:1"}]}`,
		`register service {"name":"billing","nodes":[{"id":"b1"}]}`,
		`deregister service {"name":"billing","nodes":[{"id":"b1"}]}`,
		"deregister service {",
	} {
		got := validate(text)
		if got == "" {
			t.Errorf("%s: accepted", text)
			continue
		}
		if _, want := say(t, h, text); got != want {
			t.Errorf("%s: Validate says %q, Exec %q", text, got, want)
		}
	}
	if svcs, _ := reg.ListServices(); len(svcs) != 0 {
		t.Fatalf("validation changed the registry: %v", svcs)
	}
	if got := validate("register service " + registrycmd.Example); got != "" {
		t.Errorf("the example is refused: %q", got)
	}
	if svcs, _ := reg.ListServices(); len(svcs) != 0 {
		t.Fatalf("validating a registration registered it: %v", svcs)
	}
	wantResult(t, h, "register service "+registrycmd.Example, "Registered billing version 1.0.0 with 1 node: billing-1 at 10.0.0.5:9090.")
	if got := validate("deregister service " + registrycmd.DeregisterExample); got != "" {
		t.Errorf("deregistering a registered node is refused: %q", got)
	}
	if svcs, _ := reg.GetService("billing"); len(svcs) != 1 || len(svcs[0].Nodes) != 1 {
		t.Fatalf("validating a deregistration deregistered: %v", svcs)
	}
	for _, text := range []string{"list services", "get service billing"} {
		if got := validate(text); got != "" {
			t.Errorf("%s: %q", text, got)
		}
	}
}
