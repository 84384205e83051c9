package router_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
)

// try sends text and returns the reply, or nil if none came within d (the
// message may be lost while NATS is down).
func (e *env) try(text string, d time.Duration) *chatopsv1.Event {
	e.t.Helper()
	sub, id := e.send([]byte(text))
	defer func() { _ = sub.Unsubscribe() }()
	msg, err := sub.NextMsg(d)
	if err != nil {
		return nil
	}
	rep := &chatopsv1.Event{}
	if err := proto.Unmarshal(msg.Data, rep); err != nil {
		e.t.Fatalf("reply does not decode: %v", err)
	}
	if rep.GetInReplyTo() != id {
		e.t.Fatalf("reply to %q has in_reply_to %q, want %q", text, rep.GetInReplyTo(), id)
	}
	return rep
}

// serveOn starts a command service on m (a mesh of the test's making) and
// stops it when the test ends.
func serveOn(t *testing.T, m *mesh.Mesh, name string, h chatopsv1.CommandHandler) {
	t.Helper()
	svc, err := command.New(m, name, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
}

// The NATS server is shut down and started again 3s later on the same port
// (issue 11): the router keeps its view of the command services all along,
// help lists them, and once NATS is back the first command answers
// correctly, although the router may reconnect before the service does.
func TestNATSRestartKeepsCommandServices(t *testing.T) {
	noJS := func(o *server.Options) { o.JetStream = false }
	s := meshtest.NATS(t, noJS)
	port := s.Addr().(*net.TCPAddr).Port
	// The second server, once started, stops after everything else.
	var s2 *server.Server
	t.Cleanup(func() {
		if s2 != nil {
			s2.Shutdown()
			s2.WaitForShutdown()
		}
	})
	// Resyncs every 200ms: many listings are taken while NATS is down.
	e := newEnvOn(t, s, router.Config{Delivery: durable.Core, ResyncInterval: 200 * time.Millisecond, Timeout: 10 * time.Second})
	// The gateway's connection reconnects as fast as the mesh's.
	gw, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	e.nc = gw
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return strings.Contains(string(e.ask("help").GetData()), "echo [text]") })
	if rep := e.ask("echo before"); !isReply(rep) || string(rep.GetData()) != "before" {
		t.Fatalf("echo before the outage: %s %q", rep.GetType(), rep.GetData())
	}

	s.Shutdown()
	s.WaitForShutdown()
	down := time.Now()
	listed := func() bool {
		for _, c := range e.r.Directory().Commands() {
			if c.Pattern() == "echo" {
				return true
			}
		}
		return false
	}
	for time.Since(down) < 3*time.Second {
		if !listed() {
			t.Fatalf("echo left the router's view %s into the NATS outage", time.Since(down).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}

	s2, err = server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s2.Start()
	if !s2.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready again after 10s")
	}
	back := time.Now()

	// Once the router answers again, echo works at the first try and help
	// lists it.
	for i := 0; ; i++ {
		if rep := e.try("ping", 500*time.Millisecond); rep != nil && string(rep.GetData()) == "pong" {
			break
		}
		if i == 100 || time.Since(back) > 20*time.Second {
			t.Fatal("the router did not answer within 20s of NATS coming back")
		}
		time.Sleep(50 * time.Millisecond) // "no responders" comes at once
	}
	t.Logf("the router answered %s after NATS came back", time.Since(back).Round(time.Millisecond))
	if rep := e.ask("echo after"); !isReply(rep) || string(rep.GetData()) != "after" {
		t.Errorf("first echo after the outage: %s %q", rep.GetType(), rep.GetData())
	}
	if h := string(e.ask("help").GetData()); !strings.Contains(h, "echo [text] - Returns the [text]") {
		t.Errorf("help after the outage lacks echo:\n%s", h)
	}
	// And so it stays, across resyncs.
	for i := range 10 {
		if rep := e.ask("echo again"); !isReply(rep) || string(rep.GetData()) != "again" {
			t.Fatalf("echo %d after the outage: %s %q", i, rep.GetType(), rep.GetData())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !listed() {
		t.Error("echo left the router's view after the outage")
	}
}

// slowReconnect returns a NATS option under which a connection, once lost,
// waits *delay before it reconnects.
func slowReconnect(delay *atomic.Int64) mesh.Option {
	return mesh.WithNATSOptions(nats.ReconnectToServer(func(servers []nats.Server, _ nats.ServerInfo) (*nats.Server, time.Duration) {
		return &servers[0], time.Duration(delay.Load())
	}))
}

// disconnect closes m's NATS connection at the server, as a network
// failure would, and waits until m sees it.
func disconnect(t *testing.T, s *server.Server, m *mesh.Mesh) {
	t.Helper()
	id, err := m.NATS().GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DisconnectClientByID(id); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); m.NATS().IsConnected(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the connection was not lost within 5s")
		}
	}
}

// A command whose service's connection drops is tried again until it comes
// back within the deadline, and runs once; one that does not come back
// gets an error that says what happened, in the user's words, not NATS's.
func TestCallRetriedUntilServiceReconnects(t *testing.T) {
	var timeouts router.Timeouts
	if err := timeouts.Set("flap=10s"); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, router.Config{Timeout: 3 * time.Second, CommandTimeouts: timeouts})
	var runs atomic.Int32
	flap := handler{exec: func(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
		runs.Add(1)
		rsp.Result = []byte(strings.Join(req.Args[1:], " "))
		return nil
	}}
	var flapDelay, goneDelay atomic.Int64
	flapDelay.Store(int64(1500 * time.Millisecond))
	goneDelay.Store(int64(time.Minute))
	flapMesh := meshtest.Mesh(t, e.s, nil, slowReconnect(&flapDelay))
	goneMesh := meshtest.Mesh(t, e.s, nil, slowReconnect(&goneDelay))
	serveOn(t, flapMesh, "flap", flap)
	serveOn(t, goneMesh, "gone", flap)
	waitFor(t, func() bool {
		h := string(e.ask("help").GetData())
		return strings.Contains(h, "flap") && strings.Contains(h, "gone")
	})
	for _, cmd := range []string{"flap", "gone"} {
		if rep := e.ask(cmd + " hi"); !isReply(rep) || string(rep.GetData()) != "hi" {
			t.Fatalf("%s before its connection drops: %s %q", cmd, rep.GetType(), rep.GetData())
		}
	}

	// flap's connection is back 1.5s after it drops: the call waits for
	// it, and the command runs once.
	runs.Store(0)
	disconnect(t, e.s, flapMesh)
	start := time.Now()
	if rep := e.ask("flap back"); !isReply(rep) || string(rep.GetData()) != "back" {
		t.Errorf("flap while its service reconnects: %s %q", rep.GetType(), rep.GetData())
	}
	t.Logf("answered after %s", time.Since(start).Round(time.Millisecond))
	if n := runs.Load(); n != 1 {
		t.Errorf("the command ran %d times, want once", n)
	}

	// gone's is not back within its 3s.
	disconnect(t, e.s, goneMesh)
	start = time.Now()
	rep := e.ask("gone now")
	took := time.Since(start)
	text := string(rep.GetData())
	if want := "gone: could not reach go.micro.bot.gone: none of its instances answered within 3s (they may be restarting); try again shortly"; !isError(rep) || text != want {
		t.Errorf("gone: %s %q, want error %q", rep.GetType(), text, want)
	}
	for _, raw := range []string{"nats", "responders", "go.micro.client"} {
		if strings.Contains(strings.ToLower(text), raw) {
			t.Errorf("the error shows library text %q: %q", raw, text)
		}
	}
	if took < 2*time.Second || took > 4*time.Second {
		t.Errorf("gone's error came after %s; want it tried until about its 3s deadline", took)
	}
	goneDelay.Store(0) // let it reconnect, for a quick cleanup
}
