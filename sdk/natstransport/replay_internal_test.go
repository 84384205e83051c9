package natstransport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"
)

const replaySvc = "go.micro.bot.count"

// quiet drops what go-micro's server logs.
var quiet = logger.NewLogger(logger.WithOutput(io.Discard))

// counting runs Exec, counting the runs; each run waits for release (if
// not nil) and answers "ran <text>".
type counting struct {
	runs    atomic.Int32
	release chan struct{}
}

func (c *counting) Help(context.Context, *chatopsv1.HelpRequest, *chatopsv1.HelpResponse) error {
	return nil
}

func (c *counting) Exec(ctx context.Context, in *chatopsv1.ExecRequest, out *chatopsv1.ExecResponse) error {
	c.runs.Add(1)
	if c.release != nil {
		select {
		case <-c.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	out.Result = []byte("ran " + in.Text)
	return nil
}

func natsServer(t *testing.T, port int) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready after 5s")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func dial(t *testing.T, url string, wait time.Duration) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.ReconnectWait(wait), nats.MaxReconnects(-1), nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serveCounting serves h on a transport of its own on nc (as mesh.NewServer
// does: with ReplayMetadata) and returns the node's address.
func serveCounting(t *testing.T, nc *nats.Conn, reg registry.Registry, h *counting) string {
	t.Helper()
	srv := server.NewServer(server.Name(replaySvc), server.Registry(reg), server.Transport(New(nc)),
		server.Broker(broker.NewMemoryBroker()), server.Wait(nil), server.WithLogger(quiet),
		server.Metadata(map[string]string{ReplayMetadata: "1"}))
	if err := chatopsv1.RegisterCommandHandler(srv, h); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	svcs, err := reg.GetService(replaySvc)
	if err != nil || len(svcs) != 1 || len(svcs[0].Nodes) != 1 {
		t.Fatalf("registered: %v %v", svcs, err)
	}
	return svcs[0].Nodes[0].Address
}

func countingClient(nc *nats.Conn, reg registry.Registry) client.Client {
	return NewClient(New(nc), client.ContentType("application/protobuf"), client.Registry(reg),
		client.Selector(selector.NewSelector(selector.Registry(reg))), client.Broker(broker.NewMemoryBroker()))
}

func call(ctx context.Context, c client.Client, text string) (string, error) {
	rsp, err := chatopsv1.NewCommandService(replaySvc, c).Exec(ctx, &chatopsv1.ExecRequest{Command: "count", Text: text})
	if err != nil {
		return "", err
	}
	return string(rsp.Result), nil
}

// A request sent again with the resend mark is answered with the first
// response, or not at all while the first is still served: never run twice.
func TestResentRequestRunsOnce(t *testing.T) {
	s := natsServer(t, -1)
	nc := dial(t, s.ClientURL(), time.Second)
	reg := registry.NewMemoryRegistry()
	h := &counting{}
	addr := serveCounting(t, nc, reg, h)
	spy := dial(t, s.ClientURL(), time.Second)
	requests, err := spy.SubscribeSync(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	c := countingClient(dial(t, s.ClientURL(), time.Second), reg)
	if got, err := call(context.Background(), c, "a"); err != nil || got != "ran a" {
		t.Fatalf("call: %q %v", got, err)
	}
	req, err := requests.NextMsg(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var m transport.Message
	if err := readFrame(req.Data, &m); err != nil {
		t.Fatal(err)
	}
	resent := transport.Message{Header: map[string]string{resendHeader: "1"}, Body: m.Body}
	for k, v := range m.Header {
		resent.Header[k] = v
	}
	replies, err := spy.SubscribeSync(req.Reply)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := spy.PublishMsg(&nats.Msg{Subject: addr, Reply: req.Reply, Data: appendFrame(nil, &resent)}); err != nil {
			t.Fatal(err)
		}
		rep, err := replies.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("resend %d: no response: %v", i, err)
		}
		var rm transport.Message
		if err := readFrame(rep.Data, &rm); err != nil || !bytes.Contains(rm.Body, []byte("ran a")) {
			t.Fatalf("resend %d: response %q %v", i, rm.Body, err)
		}
	}
	if n := h.runs.Load(); n != 1 {
		t.Errorf("ran %d times, want 1", n)
	}

	// While the first is still being served, a resend gets nothing: the
	// first's response answers it.
	h.release = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		got, err := call(context.Background(), c, "b")
		if err == nil && got != "ran b" {
			err = fmt.Errorf("got %q", got)
		}
		done <- err
	}()
	req, err = requests.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := readFrame(req.Data, &m); err != nil {
		t.Fatal(err)
	}
	m.Header[resendHeader] = "1"
	if err := spy.PublishMsg(&nats.Msg{Subject: addr, Reply: req.Reply, Data: appendFrame(nil, &m)}); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	close(h.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := h.runs.Load(); n != 2 {
		t.Errorf("ran %d times for two calls, want 2", n)
	}
}

// A call whose response is lost because NATS restarted (the service's
// connection came back first and sent it to a server where the caller was
// not yet subscribed) is answered: the caller sends the request again once
// it reconnects, and the service answers it from memory, without running
// the command twice.
func TestCallSurvivesNATSRestart(t *testing.T) {
	s := natsServer(t, -1)
	url := s.ClientURL()
	svcConn := dial(t, url, 50*time.Millisecond)
	reg := registry.NewMemoryRegistry()
	h := &counting{release: make(chan struct{})}
	serveCounting(t, svcConn, reg, h)
	callerConn := dial(t, url, 1500*time.Millisecond)
	c := countingClient(callerConn, reg)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		got, err := call(ctx, c, "once")
		if err == nil && got != "ran once" {
			err = fmt.Errorf("got %q", got)
		}
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for h.runs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the command never started")
		}
		time.Sleep(10 * time.Millisecond)
	}

	tcp := s.Addr().String()
	var p int
	if _, err := fmt.Sscanf(tcp[len("127.0.0.1:"):], "%d", &p); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	natsServer(t, p)
	for !svcConn.IsConnected() {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("the service did not reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if callerConn.IsConnected() {
		t.Fatal("the caller reconnected first: the test cannot lose the response")
	}
	close(h.release) // the response goes to a server that has no subscriber for it yet
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("call across the restart: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("the call never returned")
	}
	if n := h.runs.Load(); n != 1 {
		t.Errorf("ran %d times, want 1", n)
	}
}
