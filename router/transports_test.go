package router_test

import (
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"github.com/nats-io/nuid"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
)

// serveOver starts a node of the command name on transport ("http" or
// "nats") that answers reply, registered in the NATS registry as go-micro
// registers it (metadata transport=…). kill stops it without
// deregistering, as a crashed process leaves its registration behind.
func (e *env) serveOver(name, transport, reply string) (kill func()) {
	e.t.Helper()
	svc, kill := e.nodeOver(name, transport, reply)
	reg := meshtest.Mesh(e.t, e.s, nil).Registry()
	if err := reg.Register(svc); err != nil {
		e.t.Fatal(err)
	}
	return kill
}

// nodeOver is serveOver without the registration in the NATS registry: it
// returns the registration, for the test to make.
func (e *env) nodeOver(name, transport, reply string) (*registry.Service, func()) {
	e.t.Helper()
	own := registry.NewMemoryRegistry()
	m := meshtest.Mesh(e.t, e.s, func(c *mesh.Config) {
		c.Transport = transport
		c.ServerAddress = "127.0.0.1:0"
	}, mesh.WithRegistry(own))
	srv := m.NewServer("go.micro.bot." + name)
	h := handler{exec: func(_ context.Context, _ *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
		rsp.Result = []byte(reply)
		return nil
	}}
	if err := chatopsv1.RegisterCommandHandler(srv, h); err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = srv.Stop() })
	svcs, err := own.GetService("go.micro.bot." + name)
	if err != nil || len(svcs) != 1 || len(svcs[0].Nodes) != 1 {
		e.t.Fatalf("registration of %s: %v %v", name, svcs, err)
	}
	node := svcs[0].Nodes[0]
	if got := node.Metadata["transport"]; got != transport {
		e.t.Fatalf("%s registered transport %q, want %q", name, got, transport)
	}
	kill := func() { _ = srv.Stop() }
	if transport == "http" {
		// go-micro's server keeps serving the connections it accepted
		// after Stop; a proxy in front of it can drop them all, as a
		// dead process would.
		p := newCutProxy(e.t, node.Address)
		node.Address = p.addr
		kill = p.cut
	}
	return svcs[0], kill
}

// One command served by a node on http, one on NATS and one on gRPC (go-micro's
// grpc server plugin), behind a router on the NATS transport: every node
// gets calls; when the http one is killed (its registration left behind),
// the others answer every call. A command
// served only over a transport the router cannot call is named with the
// reason in help, in the reply and in the log.
func TestMixedTransportNodes(t *testing.T) {
	var log meshtest.Buffer
	e := newEnvLogged(t, meshtest.NATS(t), router.Config{Timeout: 10 * time.Second}, &log)
	killHTTP := e.serveOver("shout", "http", "from http")
	e.serveOver("shout", "nats", "from nats")
	e.serveGRPC("shout", "from grpc")

	seen := map[string]int{}
	waitFor(t, func() bool {
		rep := e.ask("shout")
		if isReply(rep) {
			seen[string(rep.GetData())]++
		}
		return seen["from http"] > 0 && seen["from nats"] > 0 && seen["from grpc"] > 0
	})
	t.Logf("answers before the http node was killed: %v", seen)

	killHTTP()
	for i := range 20 {
		if rep := e.ask("shout"); !isReply(rep) || string(rep.GetData()) != "from nats" && string(rep.GetData()) != "from grpc" {
			t.Fatalf("call %d after the http node was killed: %s %q", i, rep.GetType(), rep.GetData())
		}
	}

	reg := meshtest.Mesh(t, e.s, nil).Registry()
	if err := reg.Register(&registry.Service{Name: "go.micro.bot.legacy", Version: "1.0", Nodes: []*registry.Node{{
		Id: "legacy-1", Address: "127.0.0.1:1",
		Metadata: map[string]string{"transport": "quic", "server": "mucp", "protocol": "mucp", "registry": "nats", "broker": "http"},
	}}}); err != nil {
		t.Fatal(err)
	}
	const why = "go.micro.bot.legacy (node legacy-1) serves over quic, which botmesh cannot call (it calls go-micro nodes over http, NATS and gRPC)"
	waitFor(t, func() bool {
		return strings.Contains(string(e.ask("help").GetData()), "\nlegacy - cannot be run: "+why)
	})
	if rep := e.ask("legacy now"); !isError(rep) || string(rep.GetData()) != "legacy: "+why {
		t.Errorf("legacy now: %s %q", rep.GetType(), rep.GetData())
	}
	if l := log.String(); !regexp.MustCompile(`msg="command service node cannot be called" .*service=go.micro.bot.legacy node=legacy-1 transport=quic`).MatchString(l) {
		t.Errorf("the router did not log the node it cannot call:\n%s", l)
	}
}

// serveGRPC starts a node of the command name on go-micro's grpc server
// plugin (it registers server and transport "grpc") that answers reply.
func (e *env) serveGRPC(name, reply string) {
	e.t.Helper()
	reg := meshtest.Mesh(e.t, e.s, nil).Registry()
	srv := grpcserver.NewServer(server.Name("go.micro.bot."+name), server.Id(nuid.Next()), server.Registry(reg), server.Address("127.0.0.1:0"))
	h := handler{exec: func(_ context.Context, _ *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
		rsp.Result = []byte(reply)
		return nil
	}}
	if err := chatopsv1.RegisterCommandHandler(srv, h); err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = srv.Stop() })
}

// cutProxy forwards TCP connections to a backend until cut, which closes
// its listener and every connection.
type cutProxy struct {
	addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  bool
}

func newCutProxy(t *testing.T, backend string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: ln.Addr().String(), ln: ln}
	t.Cleanup(p.cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.done {
				p.mu.Unlock()
				c.Close()
				b.Close()
				return
			}
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); b.Close() }()
			go func() { _, _ = io.Copy(c, b); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// serveVersion starts a node of the command service name at version with
// h, on its own mesh (as a separate process would).
func (e *env) serveVersion(name, version string, h chatopsv1.CommandHandler) func() {
	e.t.Helper()
	m := meshtest.Mesh(e.t, e.s, nil)
	srv := m.NewServer("go.micro.bot."+name, server.Version(version))
	if err := chatopsv1.RegisterCommandHandler(srv, h); err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = srv.Stop() }) }
	e.t.Cleanup(stop)
	return stop
}

// A service served by two versions side by side: help describes it from
// Command.Help, a command only the new version serves appears without a
// restart and runs only on the new version's nodes, the command both
// serve runs on both, and when the old version stops its description is
// the new one's.
func TestTwoVersions(t *testing.T) {
	e := newEnv(t, router.Config{Timeout: 10 * time.Second})
	answer := func(v string) func(context.Context, *chatopsv1.ExecRequest, *chatopsv1.ExecResponse) error {
		return func(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
			rsp.Result = []byte(v + ": " + strings.Join(req.Args, " "))
			return nil
		}
	}
	stopV1 := e.serveVersion("shout", "1.0.0", handler{
		help: func(rsp *chatopsv1.HelpResponse) error {
			rsp.Usage, rsp.Description = "shout TEXT", "Shouts TEXT"
			return nil
		},
		exec: answer("v1"),
	})
	waitFor(t, func() bool {
		return strings.Contains(string(e.ask("help").GetData()), "\nshout [text] - Shouts [text]\n")
	})

	e.serveVersion("shout", "2.0.0", handler{
		help: func(rsp *chatopsv1.HelpResponse) error {
			rsp.Commands = []*chatopsv1.CommandSpec{
				{Pattern: "shout", Usage: "shout TEXT", Description: "Shouts TEXT, louder"},
				{Pattern: "whisper", Usage: "whisper TEXT", Description: "Whispers TEXT"},
			}
			return nil
		},
		exec: answer("v2"),
	})
	waitFor(t, func() bool {
		h := string(e.ask("help").GetData())
		return strings.Contains(h, "\nshout [text] - Shouts [text], louder") && strings.Contains(h, "\nwhisper [text] - Whispers [text]")
	})
	for i := range 20 {
		if rep := e.ask("whisper hi"); !isReply(rep) || string(rep.GetData()) != "v2: whisper hi" {
			t.Fatalf("whisper, call %d: %s %q (only version 2.0.0 serves it)", i, rep.GetType(), rep.GetData())
		}
	}
	seen := map[string]bool{}
	waitFor(t, func() bool {
		seen[string(e.ask("shout hi").GetData())] = true
		return seen["v1: shout hi"] && seen["v2: shout hi"]
	})

	stopV1()
	waitFor(t, func() bool {
		for range 5 {
			if string(e.ask("shout hi").GetData()) != "v2: shout hi" {
				return false
			}
		}
		return true
	})
	if h := string(e.ask("help").GetData()); !strings.Contains(h, "\nshout [text] - Shouts [text], louder") || strings.Contains(h, "Shouts [text]\n") {
		t.Errorf("help after version 1.0.0 stopped:\n%s", h)
	}
}
