package natstransport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/natstransport"
	natstr "github.com/go-micro/plugins/v4/transport/nats"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"
)

const service = "go.micro.bot.echo"

// quiet is the go-micro logger of the servers, clients and transports of
// the tests: their goroutines outlive a test, and must not write to its
// output then. (go-micro's own logger prints to stdout whatever its Out.)
var quiet = &recorder{}

// recorder is a go-micro logger that keeps what is logged at error level,
// if keep, and drops the rest.
type recorder struct {
	keep   bool
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Init(...logger.Option) error                 { return nil }
func (r *recorder) Options() logger.Options                     { return logger.Options{Level: logger.InfoLevel} }
func (r *recorder) Fields(map[string]interface{}) logger.Logger { return r }
func (r *recorder) String() string                              { return "recorder" }
func (r *recorder) Log(level logger.Level, v ...interface{})    { r.record(level, fmt.Sprint(v...)) }
func (r *recorder) Logf(level logger.Level, f string, v ...interface{}) {
	r.record(level, fmt.Sprintf(f, v...))
}

func (r *recorder) record(level logger.Level, msg string) {
	if !r.keep || level < logger.ErrorLevel {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, msg)
}

func (r *recorder) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errors)
}

// runNATS starts a NATS server on a random loopback port for the test.
func runNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		s.Shutdown()
		t.Fatal("NATS server not ready after 5s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// connect opens a NATS connection, closed when the test ends.
func connect(t testing.TB, s *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// pluginTransport is go-micro's NATS transport plugin on s; it opens a
// connection of its own for each listener and client socket.
func pluginTransport(s *natsserver.Server) transport.Transport {
	o := nats.GetDefaultOptions()
	o.AllowReconnect = false
	return natstr.NewTransport(natstr.Options(o), transport.Addrs(s.ClientURL()))
}

// command is the Command service of the tests. Exec answers by
// in.Command: "echo" echoes in.Text, "meta" the metadata value named by
// in.Text, "bad" fails with a 400, "block" waits for the context or for
// release.
type command struct {
	release chan struct{}
	once    sync.Once
}

func newCommand() *command { return &command{release: make(chan struct{})} }

// unblock releases the blocked calls, and those to come.
func (c *command) unblock() { c.once.Do(func() { close(c.release) }) }

func (c *command) Help(_ context.Context, _ *chatopsv1.HelpRequest, out *chatopsv1.HelpResponse) error {
	out.Usage = "echo TEXT"
	out.Description = "says it again"
	return nil
}

func (c *command) Exec(ctx context.Context, in *chatopsv1.ExecRequest, out *chatopsv1.ExecResponse) error {
	switch in.Command {
	case "meta":
		v, ok := metadata.Get(ctx, in.Text)
		if !ok {
			return merrors.NotFound("botmesh.test.echo", "no metadata %q", in.Text)
		}
		out.Result = []byte(v)
	case "bad":
		return merrors.BadRequest("botmesh.test.echo", "cannot echo %q", in.Text)
	case "block":
		select {
		case <-ctx.Done():
		case <-c.release:
		}
	default:
		out.Result = []byte(in.Text)
	}
	return nil
}

// Streamer is a bidirectional stream handler: it echoes every message.
type Streamer struct{}

func (Streamer) Echo(_ context.Context, stream server.Stream) error {
	for {
		var in chatopsv1.ExecRequest
		if err := stream.Recv(&in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := stream.Send(&chatopsv1.ExecResponse{Result: []byte(in.Text)}); err != nil {
			return err
		}
	}
}

// startService starts the Command service (and the Streamer) on tr,
// registered in reg; it is stopped when the test ends.
func startService(t testing.TB, tr transport.Transport, reg registry.Registry, h *command) server.Server {
	t.Helper()
	srv := server.NewServer(
		server.Name(service),
		server.Registry(reg),
		server.Transport(tr),
		server.Broker(broker.NewMemoryBroker()),
		server.WithLogger(quiet),
		server.Wait(nil),
	)
	if err := chatopsv1.RegisterCommandHandler(srv, h); err != nil {
		t.Fatal(err)
	}
	if err := srv.Handle(srv.NewHandler(Streamer{})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	// Cleanups run last first: this one before Stop, which waits for
	// the handlers.
	t.Cleanup(h.unblock)
	return srv
}

// clientOptions are those of botmesh's clients (mesh.NewClient).
func clientOptions(reg registry.Registry, opts ...client.Option) []client.Option {
	return append([]client.Option{
		client.ContentType("application/protobuf"),
		client.Registry(reg),
		client.Selector(selector.NewSelector(selector.Registry(reg))),
		client.Broker(broker.NewMemoryBroker()),
		client.WithLogger(quiet),
	}, opts...)
}

// The clients of the tests.
const (
	fastClient   = "natstransport.Client"
	rpcClient    = "rpc client on natstransport"
	pluginClient = "rpc client on the plugin"
)

func newClient(t testing.TB, kind string, s *natsserver.Server, reg registry.Registry, opts ...client.Option) client.Client {
	t.Helper()
	opts = clientOptions(reg, opts...)
	switch kind {
	case fastClient:
		return natstransport.NewClient(natstransport.New(connect(t, s), transport.Logger(quiet)), opts...)
	case rpcClient:
		return client.NewClient(append(opts, client.Transport(natstransport.New(connect(t, s), transport.Logger(quiet))))...)
	case pluginClient:
		return client.NewClient(append(opts, client.Transport(pluginTransport(s)))...)
	}
	t.Fatalf("no client %q", kind)
	return nil
}

func exec(ctx context.Context, c client.Client, command, text string, opts ...client.CallOption) (string, error) {
	rsp, err := chatopsv1.NewCommandService(service, c).Exec(ctx, &chatopsv1.ExecRequest{Command: command, Text: text}, opts...)
	if err != nil {
		return "", err
	}
	return string(rsp.Result), nil
}

// code is the go-micro error code of err, 0 for none.
func code(err error) int32 {
	if e := merrors.FromError(err); e != nil {
		return e.Code
	}
	return 0
}

// waitReachable waits until c reaches the service: the plugin's server
// subscribes to its address only once go-micro's server calls Accept,
// after Start returns, and answers "no responders" until then.
func waitReachable(t testing.TB, c client.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := exec(context.Background(), c, "echo", "ping", client.WithRequestTimeout(time.Second))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service not reachable within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInterop calls a service on either transport with every client: a
// go-micro server on this transport or on the plugin answers the fast
// client and go-micro's rpc client on either transport the same.
func TestInterop(t *testing.T) {
	type pair struct{ server, client string }
	pairs := []pair{
		{"natstransport", fastClient},
		{"natstransport", rpcClient},
		{"natstransport", pluginClient},
		{"plugin", fastClient},
		{"plugin", rpcClient},
	}
	for _, p := range pairs {
		t.Run(p.server+" server, "+p.client, func(t *testing.T) {
			s := runNATS(t)
			reg := registry.NewMemoryRegistry()
			var tr transport.Transport
			if p.server == "plugin" {
				tr = pluginTransport(s)
			} else {
				tr = natstransport.New(connect(t, s), transport.Logger(quiet))
			}
			h := newCommand()
			startService(t, tr, reg, h)
			c := newClient(t, p.client, s, reg)
			if p.server == "plugin" {
				waitReachable(t, c)
			} // else reachable once Start returns
			ctx := context.Background()

			t.Run("echo", func(t *testing.T) {
				for _, text := range []string{"hello", "", `"quoted" \back\slash`, "ünïcødé 🤖\u2028", "ctl\x00\x01\b\f\n", strings.Repeat("long ", 20000)} {
					got, err := exec(ctx, c, "echo", text)
					if err != nil {
						t.Fatalf("echo %.40q: %v", text, err)
					}
					if got != text {
						t.Errorf("echo %.40q = %.40q", text, got)
					}
				}
			})
			t.Run("help", func(t *testing.T) {
				rsp, err := chatopsv1.NewCommandService(service, c).Help(ctx, &chatopsv1.HelpRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if rsp.Usage != "echo TEXT" || rsp.Description != "says it again" {
					t.Errorf("help = %v", rsp)
				}
			})
			t.Run("json", func(t *testing.T) {
				// go-micro's default content type, in place of botmesh's
				// protobuf.
				c := newClient(t, p.client, s, reg, client.ContentType("application/json"))
				if got, err := exec(ctx, c, "echo", "json \"body\""); err != nil || got != "json \"body\"" {
					t.Errorf("echo = %q, %v", got, err)
				}
			})
			t.Run("server error", func(t *testing.T) {
				_, err := exec(ctx, c, "bad", `x"y`)
				got := merrors.FromError(err)
				if got == nil || got.Id != "botmesh.test.echo" || got.Code != 400 ||
					got.Detail != `cannot echo "x\"y"` || got.Status != "Bad Request" {
					t.Errorf("error = %v, want the handler's 400", err)
				}
			})
			t.Run("metadata", func(t *testing.T) {
				md := map[string]string{
					"X-Trace-Id":   "trace-42",
					"Botmesh-User": `Ünïcode "quoted" \ user`,
				}
				mctx := metadata.NewContext(ctx, md)
				for k, v := range md {
					got, err := exec(mctx, c, "meta", k)
					if err != nil {
						t.Fatalf("metadata %s: %v", k, err)
					}
					if got != v {
						t.Errorf("handler got metadata %s = %q, want %q", k, got, v)
					}
				}
				if _, err := exec(ctx, c, "meta", "X-Trace-Id"); code(err) != 404 {
					t.Errorf("without metadata: %v, want the handler's 404", err)
				}
			})
		})
	}
}

// TestStream runs a go-micro bidirectional stream on this transport: the
// messages arrive in order, each answered on the stream.
func TestStream(t *testing.T) {
	for _, kind := range []string{fastClient, rpcClient} {
		t.Run(kind, func(t *testing.T) {
			s := runNATS(t)
			reg := registry.NewMemoryRegistry()
			startService(t, natstransport.New(connect(t, s), transport.Logger(quiet)), reg, newCommand())
			c := newClient(t, kind, s, reg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// (go-micro's server drops the body of a stream's request.)
			st, err := c.Stream(ctx, c.NewRequest(service, "Streamer.Echo", &chatopsv1.ExecRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				if err := st.Send(&chatopsv1.ExecRequest{Text: strconv.Itoa(i)}); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				var rsp chatopsv1.ExecResponse
				if err := st.Recv(&rsp); err != nil {
					t.Fatalf("recv %d: %v", i, err)
				}
				if got := string(rsp.Result); got != strconv.Itoa(i) {
					t.Fatalf("message %d: got %q", i, got)
				}
			}
			if err := st.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
}

// TestNoResponders calls an address nobody listens on: NATS says so at
// once, and the call fails long before its timeout.
func TestNoResponders(t *testing.T) {
	s := runNATS(t)
	reg := registry.NewMemoryRegistry()
	for _, kind := range []string{fastClient, rpcClient} {
		t.Run(kind, func(t *testing.T) {
			c := newClient(t, kind, s, reg)
			start := time.Now()
			_, err := exec(context.Background(), c, "echo", "anyone?",
				client.WithAddress("botmesh.test.nobody"), client.WithRequestTimeout(10*time.Second))
			took := time.Since(start)
			e := merrors.FromError(err)
			if e == nil || e.Code != 500 || !strings.Contains(e.Detail, "no responders") {
				t.Fatalf("error = %v, want a 500 for no responders", err)
			}
			if took > 3*time.Second {
				t.Errorf("the call took %v: it waited for its timeout", took)
			}
		})
	}
	t.Run("socket", func(t *testing.T) {
		tr := natstransport.New(connect(t, s), transport.Logger(quiet))
		c, err := tr.Dial("botmesh.test.nobody")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Send(&transport.Message{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := c.Recv(new(transport.Message)); !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("Recv = %v, want nats.ErrNoResponders", err)
		}
	})
}

// TestRequestTimeout: a request that is not answered in time fails with
// go-micro's 408 when its timeout passes, neither sooner nor much later.
func TestRequestTimeout(t *testing.T) {
	s := runNATS(t)
	reg := registry.NewMemoryRegistry()
	h := newCommand()
	startService(t, natstransport.New(connect(t, s), transport.Logger(quiet)), reg, h)
	const timeout = 300 * time.Millisecond
	for _, kind := range []string{fastClient, rpcClient} {
		t.Run(kind, func(t *testing.T) {
			c := newClient(t, kind, s, reg)
			waitReachable(t, c)
			start := time.Now()
			_, err := exec(context.Background(), c, "block", "", client.WithRequestTimeout(timeout))
			took := time.Since(start)
			if code(err) != 408 {
				t.Fatalf("error = %v, want a 408", err)
			}
			if took < timeout || took > timeout+3*time.Second {
				t.Errorf("timed out after %v, want %v", took, timeout)
			}
			// A context deadline is the request's timeout too.
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if _, err := exec(ctx, c, "block", ""); code(err) != 408 {
				t.Errorf("with a context deadline: %v, want a 408", err)
			}
		})
	}
	t.Run("socket", func(t *testing.T) {
		// Nobody answers, yet somebody listens: Recv times out.
		nc := connect(t, s)
		if _, err := nc.Subscribe("botmesh.test.silent", func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		tr := natstransport.New(connect(t, s), transport.Timeout(100*time.Millisecond))
		c, err := tr.Dial("botmesh.test.silent")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Send(&transport.Message{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := c.Recv(new(transport.Message)); !errors.Is(err, nats.ErrTimeout) {
			t.Errorf("Recv = %v, want nats.ErrTimeout", err)
		}
		if took := time.Since(start); took < 100*time.Millisecond || took > 3*time.Second {
			t.Errorf("Recv timed out after %v, want 100ms", took)
		}
	})
}

// TestConcurrentCalls makes many calls at once on one client: each gets
// its own answer (the reply to its own request, not another's).
func TestConcurrentCalls(t *testing.T) {
	s := runNATS(t)
	reg := registry.NewMemoryRegistry()
	startService(t, natstransport.New(connect(t, s), transport.Logger(quiet)), reg, newCommand())
	for _, tc := range []struct {
		kind           string
		workers, calls int
	}{
		{fastClient, 32, 2000},
		{rpcClient, 16, 500},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			c := newClient(t, tc.kind, s, reg)
			waitReachable(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var (
				wg       sync.WaitGroup
				next     atomic.Int64
				ok, fail atomic.Int64
			)
			for range tc.workers {
				wg.Go(func() {
					for ctx.Err() == nil {
						n := next.Add(1)
						if n > int64(tc.calls) {
							return
						}
						// Answers of different lengths, so that a mix-up
						// cannot go unnoticed.
						text := fmt.Sprintf("call %d %s", n, strings.Repeat("x", int(n%300)))
						got, err := exec(ctx, c, "echo", text)
						switch {
						case err != nil:
							if fail.Add(1) <= 5 {
								t.Errorf("call %d: %v", n, err)
							}
						case got != text:
							if fail.Add(1) <= 5 {
								t.Errorf("call %d: got the answer %.40q", n, got)
							}
						default:
							ok.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if ok.Load() != int64(tc.calls) {
				t.Errorf("%d of %d calls answered right, %d failed (%v)", ok.Load(), tc.calls, fail.Load(), ctx.Err())
			}
		})
	}
}

// TestClientOptions: natstransport.Client keeps go-micro's client
// contract: client wrappers wrap it, call wrappers see every attempt on the
// node the selector picked, and Retry decides on another attempt.
func TestClientOptions(t *testing.T) {
	s := runNATS(t)
	reg := registry.NewMemoryRegistry()
	startService(t, natstransport.New(connect(t, s), transport.Logger(quiet)), reg, newCommand())
	addr := nodeAddress(t, reg)
	var attempts atomic.Int64
	var nodes sync.Map
	c := newClient(t, fastClient, s, reg,
		client.Wrap(func(c client.Client) client.Client { return tagging{c} }),
		client.WrapCall(func(next client.CallFunc) client.CallFunc {
			return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
				attempts.Add(1)
				nodes.Store(node.Address, true)
				return next(ctx, node, req, rsp, opts)
			}
		}),
		client.Retries(2),
		client.Retry(client.RetryAlways),
	)
	if got, err := exec(context.Background(), c, "meta", "Wrapped-By"); err != nil || got != "tagging" {
		t.Errorf("metadata from the client wrapper: %q, %v", got, err)
	}
	if n := attempts.Load(); n != 1 {
		t.Errorf("%d attempts of a call that succeeds", n)
	}
	attempts.Store(0)
	if _, err := exec(context.Background(), c, "bad", "x"); code(err) != 400 {
		t.Errorf("error = %v, want the handler's 400", err)
	}
	if n := attempts.Load(); n != 3 {
		t.Errorf("%d attempts of a call that fails, with 2 retries always", n)
	}
	nodes.Range(func(k, _ any) bool {
		if k != addr {
			t.Errorf("an attempt on %v, want %s", k, addr)
		}
		return true
	})
}

// tagging is a client wrapper that adds metadata to calls.
type tagging struct{ client.Client }

func (w tagging) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	return w.Client.Call(metadata.Set(ctx, "Wrapped-By", "tagging"), req, rsp, opts...)
}

// TestRequestSocketsEnd: the server socket of a request ends with its
// response, and go-micro's server with it, so that goroutines do not pile
// up with the requests served.
func TestRequestSocketsEnd(t *testing.T) {
	s := runNATS(t)
	reg := registry.NewMemoryRegistry()
	startService(t, natstransport.New(connect(t, s), transport.Logger(quiet)), reg, newCommand())
	for _, kind := range []string{fastClient, rpcClient} {
		t.Run(kind, func(t *testing.T) {
			c := newClient(t, kind, s, reg)
			waitReachable(t, c)
			before := runtime.NumGoroutine()
			const calls = 300
			for i := range calls {
				if _, err := exec(context.Background(), c, "echo", "x"); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				n := runtime.NumGoroutine()
				if n < before+calls/10 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d goroutines after %d calls, %d before", n, calls, before)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestServerRestart stops a service and starts it again, on a new inbox
// (go-micro's default address), then on a subject of its own, then on the
// same subject again: it is reachable as soon as Start returns, and an
// address it left answers no more.
func TestServerRestart(t *testing.T) {
	s := runNATS(t)
	reg := registry.NewMemoryRegistry()
	h := newCommand()
	srv := startService(t, natstransport.New(connect(t, s), transport.Logger(quiet)), reg, h)
	addr := nodeAddress(t, reg)
	for i, listen := range []string{server.DefaultAddress, "botmesh.test.echo.node", "botmesh.test.echo.node"} {
		// A fresh client each time: the selector caches the registry.
		c := newClient(t, fastClient, s, reg)
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		// Once Stop returns, NATS has no subscriber: a call gets no
		// responders at once, not after its connection timeout.
		start := time.Now()
		if _, err := exec(context.Background(), c, "echo", "stopped", client.WithAddress(addr)); !strings.Contains(fmt.Sprint(err), "no responders") {
			t.Fatalf("stopped service at %s: %v, want no responders", addr, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("restart %d: calling the stopped service took %v", i, took)
		}
		// go-micro's server puts its address back (the listener's was
		// swapped in) after Stop returns: wait for it.
		deadline := time.Now().Add(5 * time.Second)
		for srv.Options().Address == addr && addr != listen {
			if time.Now().After(deadline) {
				t.Fatalf("the server's address is still %s", addr)
			}
			time.Sleep(time.Millisecond)
		}
		// go-micro's server also keeps advertising the address it first
		// registered (it sets Advertise then): clear it.
		if err := srv.Init(server.Address(listen), server.Advertise("")); err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		next := nodeAddress(t, reg)
		switch {
		case listen == server.DefaultAddress && (next == addr || !strings.HasPrefix(next, nats.InboxPrefix)):
			t.Fatalf("restart %d: listening on %s, want a new inbox (was %s)", i, next, addr)
		case listen != server.DefaultAddress && next != listen:
			t.Fatalf("restart %d: listening on %s, want %s", i, next, listen)
		}
		// No waiting: Listen returns once the server has the
		// subscription.
		text := fmt.Sprintf("after restart %d", i)
		if got, err := exec(context.Background(), c, "echo", text); err != nil || got != text {
			t.Fatalf("restart %d: echo = %q, %v", i, got, err)
		}
		if got, err := exec(context.Background(), c, "echo", text, client.WithAddress(next)); err != nil || got != text {
			t.Fatalf("restart %d: echo at %s = %q, %v", i, next, got, err)
		}
		if next != addr {
			if _, err := exec(context.Background(), c, "echo", "old", client.WithAddress(addr)); !strings.Contains(fmt.Sprint(err), "no responders") {
				t.Fatalf("restart %d: the old address %s: %v, want no responders", i, addr, err)
			}
		}
		addr = next
	}
}

// nodeAddress is the address of the service's only node in reg.
func nodeAddress(t testing.TB, reg registry.Registry) string {
	t.Helper()
	svcs, err := reg.GetService(service)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, s := range svcs {
		for _, n := range s.Nodes {
			addrs = append(addrs, n.Address)
			if n.Metadata["transport"] != natstransport.Name {
				t.Errorf("node %s registered transport %q", n.Id, n.Metadata["transport"])
			}
		}
	}
	if len(addrs) != 1 {
		t.Fatalf("nodes at %v, want one", addrs)
	}
	return addrs[0]
}

// TestMalformedRequest: a request that is not a frame is dropped and
// logged, and the listener goes on serving.
func TestMalformedRequest(t *testing.T) {
	s := runNATS(t)
	reg := registry.NewMemoryRegistry()
	logs := &recorder{keep: true}
	tr := natstransport.New(connect(t, s), transport.Logger(logs))
	h := newCommand()
	startService(t, tr, reg, h)
	addr := nodeAddress(t, reg)
	nc := connect(t, s)
	if _, err := nc.Request(addr, []byte(`{"Header":`), 200*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Errorf("malformed request: %v, want no answer (timeout)", err)
	}
	if errs := logs.Errors(); len(errs) != 1 || !strings.Contains(errs[0], "malformed request") {
		t.Errorf("logged errors %q, want one about a malformed request", errs)
	}
	c := newClient(t, fastClient, s, reg)
	if got, err := exec(context.Background(), c, "echo", "still here"); err != nil || got != "still here" {
		t.Errorf("echo = %q, %v", got, err)
	}
}

// oddHeaders are headers that JSON must escape.
var oddHeaders = map[string]string{
	"Content-Type":   "application/octet-stream",
	`say "hi"`:       `C:\dir\ "x"`,
	"Grüße 🤖":        "日本語\u2028",
	"ctl":            "\x00\x01\b\f\n\r\t\x1f\x7f",
	"<html>&":        "</script>",
	"":               "empty key",
	"Micro-Endpoint": "Command.Exec",
}

var oddBody = []byte{0, 1, 2, 0xff, 0xfe, '"', '\\', '\n', 0x80, 0xc0, 'z'}

// echoSocket answers each message on a socket with its headers, plus
// "Reply: n", and its body.
func echoSocket(sock transport.Socket) {
	for n := 1; ; n++ {
		var m transport.Message
		if err := sock.Recv(&m); err != nil {
			return
		}
		if m.Header["Connection"] == "close" && m.Header["Micro-Error"] == "EOS" {
			return // natstransport's end of a request
		}
		h := maps.Clone(m.Header)
		h["Reply"] = strconv.Itoa(n)
		if err := sock.Send(&transport.Message{Header: h, Body: m.Body}); err != nil {
			return
		}
	}
}

// TestSockets sends messages through client and server sockets of this
// transport and the plugin's, every way: headers and bodies arrive as
// sent.
func TestSockets(t *testing.T) {
	s := runNATS(t)
	for _, tc := range []struct{ listener, dialer string }{
		{"natstransport", "natstransport"},
		{"natstransport", "plugin"},
		{"plugin", "natstransport"},
	} {
		t.Run(tc.listener+" listener, "+tc.dialer+" client", func(t *testing.T) {
			newTr := func(kind string) transport.Transport {
				if kind == "plugin" {
					return pluginTransport(s)
				}
				return natstransport.New(connect(t, s), transport.Logger(quiet))
			}
			l, err := newTr(tc.listener).Listen(":0")
			if err != nil {
				t.Fatal(err)
			}
			accepted := make(chan error, 1)
			go func() { accepted <- l.Accept(echoSocket) }()
			defer func() {
				if err := l.Close(); err != nil {
					t.Errorf("close listener: %v", err)
				}
				select {
				case <-accepted:
				case <-time.After(5 * time.Second):
					t.Error("Accept did not return after Close")
				}
			}()

			c, err := newTr(tc.dialer).Dial(l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Remote() != l.Addr() {
				t.Errorf("Remote() = %q, want %q", c.Remote(), l.Addr())
			}
			send := &transport.Message{Header: oddHeaders, Body: oddBody}
			deadline := time.Now().Add(10 * time.Second)
			for {
				if err := c.Send(send); err != nil {
					t.Fatal(err)
				}
				var got transport.Message
				err := c.Recv(&got)
				if errors.Is(err, nats.ErrNoResponders) && tc.listener == "plugin" && time.Now().Before(deadline) {
					// The plugin subscribes in Accept.
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				want := maps.Clone(oddHeaders)
				want["Reply"] = "1"
				if !maps.Equal(got.Header, want) || !bytes.Equal(got.Body, oddBody) {
					t.Errorf("got %q %q\nwant %q %q", got.Header, got.Body, want, oddBody)
				}
				break
			}
		})
	}
}

// TestStreamSocket: the messages of a stream (Micro-Stream) come to one
// server socket, in order, and its replies to the client socket; a request
// that is not a stream gets a socket of its own.
func TestStreamSocket(t *testing.T) {
	s := runNATS(t)
	tr := natstransport.New(connect(t, s), transport.Logger(quiet))
	l, err := tr.Listen("botmesh.test.stream")
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr() != "botmesh.test.stream" {
		t.Errorf("Addr() = %q", l.Addr())
	}
	var sockets atomic.Int64
	type served struct{ local, remote string }
	socks := make(chan served, 100)
	go l.Accept(func(sock transport.Socket) {
		sockets.Add(1)
		socks <- served{sock.Local(), sock.Remote()}
		echoSocket(sock)
	})
	defer l.Close()

	ctr := natstransport.New(connect(t, s), transport.Logger(quiet))
	c, err := ctr.Dial(l.Addr(), transport.WithStream())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 50
	for i := range n {
		if err := c.Send(&transport.Message{Header: map[string]string{"Micro-Stream": "7", "N": strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		var m transport.Message
		if err := c.Recv(&m); err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if m.Header["N"] != strconv.Itoa(i) || m.Header["Reply"] != strconv.Itoa(i+1) {
			t.Fatalf("reply %d: %v", i, m.Header)
		}
	}
	if got := sockets.Load(); got != 1 {
		t.Errorf("a stream was served on %d sockets", got)
	}
	if sv := <-socks; sv.local != l.Addr() || sv.remote != c.Local() {
		t.Errorf("server socket %+v, want local %s, remote %s", sv, l.Addr(), c.Local())
	}

	// Requests without Micro-Stream: a socket each.
	for i := range 3 {
		if err := c.Send(&transport.Message{Header: map[string]string{"N": strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
		var m transport.Message
		if err := c.Recv(&m); err != nil {
			t.Fatal(err)
		}
		if m.Header["N"] != strconv.Itoa(i) || m.Header["Reply"] != "1" {
			t.Errorf("request %d: reply %v", i, m.Header)
		}
	}
	if got := sockets.Load(); got != 4 {
		t.Errorf("a stream and 3 requests were served on %d sockets, want 4", got)
	}
}

// TestListenerClose: Close makes Accept return, whether it comes before
// or after Accept; sockets waiting for a message end; the address answers
// no more.
func TestListenerClose(t *testing.T) {
	s := runNATS(t)
	tr := natstransport.New(connect(t, s), transport.Logger(quiet))

	t.Run("during Accept", func(t *testing.T) {
		l, err := tr.Listen("")
		if err != nil {
			t.Fatal(err)
		}
		first := make(chan error, 1)
		waiting := make(chan error, 1)
		accepted := make(chan error, 1)
		go func() {
			accepted <- l.Accept(func(sock transport.Socket) {
				var m transport.Message
				err := sock.Recv(&m)
				first <- err
				if err == nil {
					waiting <- sock.Recv(&m) // a stream's next message
				}
			})
		}()
		c, err := tr.Dial(l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Send(&transport.Message{Header: map[string]string{"Micro-Stream": "1"}}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-first:
			if err != nil {
				t.Fatalf("the stream's first Recv: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the stream's first message did not come")
		}
		select {
		case err := <-accepted:
			t.Fatalf("Accept returned before Close: %v", err)
		default:
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-accepted:
			if err != nil {
				t.Errorf("Accept = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Accept did not return after Close")
		}
		select {
		case err := <-waiting:
			if !errors.Is(err, io.EOF) {
				t.Errorf("a waiting Recv returned %v, want io.EOF", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting Recv did not end after Close")
		}
		if err := c.Send(&transport.Message{}); err != nil {
			t.Fatal(err)
		}
		if err := c.Recv(new(transport.Message)); !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("after Close: %v, want no responders", err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("before Accept", func(t *testing.T) {
		l, err := tr.Listen(":0")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		accepted := make(chan error, 1)
		go func() { accepted <- l.Accept(func(transport.Socket) { t.Error("a socket after Close") }) }()
		select {
		case err := <-accepted:
			if err != nil {
				t.Errorf("Accept = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Accept on a closed listener did not return")
		}
	})
}

// TestClientSocketClose: a closed client socket sends and receives no
// more.
func TestClientSocketClose(t *testing.T) {
	s := runNATS(t)
	tr := natstransport.New(connect(t, s), transport.Logger(quiet))
	c, err := tr.Dial("botmesh.test.any")
	if err != nil {
		t.Fatal(err)
	}
	recv := make(chan error, 1)
	go func() { recv <- c.Recv(new(transport.Message)) }()
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-recv:
		if !errors.Is(err, io.EOF) {
			t.Errorf("waiting Recv = %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting Recv did not end on Close")
	}
	if err := c.Send(&transport.Message{}); !errors.Is(err, io.EOF) {
		t.Errorf("Send after Close = %v, want io.EOF", err)
	}
	if err := c.Recv(new(transport.Message)); !errors.Is(err, io.EOF) {
		t.Errorf("Recv after Close = %v, want io.EOF", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBadAddresses(t *testing.T) {
	s := runNATS(t)
	tr := natstransport.New(connect(t, s), transport.Logger(quiet))
	for _, addr := range []string{"", "a b", "a\tb", "a\nb"} {
		if c, err := tr.Dial(addr); err == nil {
			c.Close()
			t.Errorf("Dial(%q) succeeded", addr)
		}
	}
	for _, addr := range []string{"a b", "a\r\nb"} {
		if l, err := tr.Listen(addr); err == nil {
			l.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
}

// TestClosedConnection: on a closed NATS connection Dial, Listen and a
// call fail at once.
func TestClosedConnection(t *testing.T) {
	s := runNATS(t)
	nc := connect(t, s)
	tr := natstransport.New(nc, transport.Logger(quiet))
	nc.Close()
	if _, err := tr.Dial("botmesh.test.any"); err == nil {
		t.Error("Dial on a closed connection succeeded")
	}
	if _, err := tr.Listen(""); err == nil {
		t.Error("Listen on a closed connection succeeded")
	}
	c := natstransport.NewClient(tr, clientOptions(registry.NewMemoryRegistry())...)
	_, err := exec(context.Background(), c, "echo", "x", client.WithAddress("botmesh.test.any"), client.WithRequestTimeout(10*time.Second))
	if e := merrors.FromError(err); e == nil || e.Code != 500 {
		t.Errorf("call on a closed connection = %v, want a 500", err)
	}
}

// TestTransportOptions: the transport is go-micro's "nats", and Init
// changes its options.
func TestTransportOptions(t *testing.T) {
	s := runNATS(t)
	tr := natstransport.New(connect(t, s))
	if tr.String() != "nats" {
		t.Errorf("String() = %q", tr.String())
	}
	if got := tr.Options().Timeout; got != natstransport.DefaultTimeout {
		t.Errorf("default timeout %v", got)
	}
	if err := tr.Init(transport.Timeout(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := tr.Options().Timeout; got != 50*time.Millisecond {
		t.Errorf("timeout after Init %v", got)
	}
	c := natstransport.NewClient(tr)
	if c.String() != "mucp" {
		t.Errorf("client String() = %q", c.String())
	}
}
