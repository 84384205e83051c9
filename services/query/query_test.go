package query_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/greeter"
	"github.com/botmesh/botmesh/services/query"
	dbgpb "go-micro.dev/v4/debug/proto"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
)

// say runs one chat message through the handler as a botmesh router sends
// it and returns what the user reads: the result, or the error.
func say(t *testing.T, h chatopsv1.CommandHandler, text string) (string, string) {
	t.Helper()
	words := strings.Fields(text)
	rsp := &chatopsv1.ExecResponse{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // the router's deadline
	defer cancel()
	if err := h.Exec(ctx, &chatopsv1.ExecRequest{Args: words, Text: text, Command: strings.ToLower(words[0])}, rsp); err != nil {
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

// latencies hides measured times ("(1.2ms)") so outputs compare.
var latencies = regexp.MustCompile(`\((\d+(\.\d+)?(ns|µs|ms|s))\)`)

// serve starts a go-micro server called name with handlers on its own mesh
// (as its own process would).
func serve(t *testing.T, natsURL, name string, handlers ...any) server.Server {
	t.Helper()
	m := meshtest.Mesh(t, nil, func(c *mesh.Config) { c.NATSURL = natsURL })
	srv := m.NewServer(name)
	for _, h := range handlers {
		if err := srv.Handle(srv.NewHandler(h)); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	meshtest.WaitRegistered(t, m.Registry(), name, name+"-"+srv.Options().Id)
	return srv
}

func startGreeter(t *testing.T, natsURL string) server.Server {
	t.Helper()
	m := meshtest.Mesh(t, nil, func(c *mesh.Config) { c.NATSURL = natsURL })
	srv, err := greeter.New(m, greeter.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	meshtest.WaitRegistered(t, m.Registry(), greeter.Name, greeter.Name+"-"+srv.Options().Id)
	return srv
}

// Test services: plain Go types, no generated code, no Debug handler.

type WaitRequest struct {
	Millis int `json:"millis"`
}
type WaitResponse struct {
	Waited int `json:"waited"`
}

// Slow answers after the time asked.
type Slow struct{}

func (Slow) Wait(ctx context.Context, req *WaitRequest, rsp *WaitResponse) error {
	select {
	case <-time.After(time.Duration(req.Millis) * time.Millisecond):
		rsp.Waited = req.Millis
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type BigRequest struct {
	Bytes int `json:"bytes"`
}
type BigResponse struct {
	Data string `json:"data"`
}

// Big answers with as many bytes as asked.
type Big struct{}

func (Big) Get(_ context.Context, req *BigRequest, rsp *BigResponse) error {
	rsp.Data = strings.Repeat("x", req.Bytes)
	return nil
}

// Fail fails as a handler with a bug or a broken dependency does.
func (Big) Fail(_ context.Context, _ *BigRequest, _ *BigResponse) error {
	return errors.New("database unreachable")
}

// Debug is a Debug handler whose Health hangs.
type Debug struct{}

func (Debug) Health(ctx context.Context, _ *dbgpb.HealthRequest, rsp *dbgpb.HealthResponse) error {
	<-ctx.Done()
	return ctx.Err()
}

// registerDead registers, from its own registry client, a node of service
// at an address where nothing listens: a node whose process died while its
// registration lives on (a registry with TTLs keeps it until they expire).
func registerDead(t *testing.T, natsURL, service, id string) {
	t.Helper()
	m := meshtest.Mesh(t, nil, func(c *mesh.Config) { c.NATSURL = natsURL })
	err := m.Registry().Register(&registry.Service{Name: service, Version: "1.0.0", Nodes: []*registry.Node{{
		Id: id, Address: "_INBOX.deadnode", Metadata: map[string]string{"protocol": "mucp", "transport": "nats"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	meshtest.WaitRegistered(t, m.Registry(), service, id)
}

// query and health against the NATS registry and real go-micro services.
func TestQueryNATS(t *testing.T) {
	ns := meshtest.NATS(t)
	url := ns.ClientURL()
	g := startGreeter(t, url)
	serve(t, url, "slow", &Slow{})
	serve(t, url, "big", &Big{})
	serve(t, url, "hanging", &Debug{})
	registerDead(t, url, "ghost", "ghost-1")

	m := meshtest.Mesh(t, ns, nil)
	h := query.New(m.Registry(), m.NewClient(), query.WithLogger(meshtest.Logger(t)),
		query.WithTimeout(time.Second), query.WithHealthTimeout(500*time.Millisecond), query.WithMaxBytes(4000))

	t.Run("query a protobuf handler with JSON", func(t *testing.T) {
		wantResult(t, h, `query greeter Greeter.Hello {"name":"Ada"}`, "{\n  \"message\": \"Hello, Ada!\"\n}")
		wantResult(t, h, "query greeter Greeter.Hello ```json\n{\n  \"name\": \"Ada  Lovelace\"\n}\n```", "{\n  \"message\": \"Hello, Ada  Lovelace!\"\n}")
		wantResult(t, h, `query slow Slow.Wait {"millis": 1}`, "{\n  \"waited\": 1\n}")
	})
	t.Run("errors", func(t *testing.T) {
		wantError(t, h, `query greter Greeter.Hello {"name":"Ada"}`, `unknown service "greter". Did you mean "greeter"? Type list services to see them all.`)
		wantError(t, h, `query greeter Greeter.Helo {"name":"Ada"}`, `greeter has no method "Greeter.Helo". Did you mean "Greeter.Hello"? Its methods: Greeter.Hello`)
		wantError(t, h, `query greeter Greeter.Hello {"name":"Ada",}`, "malformed JSON at line 1, column 15: invalid character '}' looking for beginning of object key string (near `name\":\"Ada\",}`)")
		wantError(t, h, `query greeter Greeter.Hello {}`, "greeter refused the request (bad request): name is required")
		wantError(t, h, `query greeter Greeter.Hello {"nmae":"Ada"}`, `greeter could not read the request as Greeter.Hello's request type: unknown field "nmae" in greeter.v1.HelloRequest (get service greeter shows its fields)`)
		wantError(t, h, `query big Big.Fail {}`, "big answered with an error: database unreachable")
		wantError(t, h, `query slow Slow.Wait {"millis": 3000}`, "no answer from slow (Slow.Wait) within 1s")
		wantError(t, h, `query ghost Ghost.Boo {}`, "could not reach ghost: nothing answers at its address (NATS: no responders); its process is probably gone")
		wantError(t, h, "query greeter", "which method of greeter? Usage: query [service] [method] [json], e.g. query greeter Greeter.Hello {}")
	})
	t.Run("an answer too long for chat is cut with a note", func(t *testing.T) {
		got, errText := say(t, h, `query big Big.Get {"bytes": 10000}`)
		// {\n  "data": "xxx…"\n} is 10,016 bytes; 4,000 are allowed.
		want := "{\n  \"data\": \"" + strings.Repeat("x", 4000-128-13) + "\n… [cut: 6144 of 10016 bytes not shown; the limit is 4000]"
		if errText != "" || got != want {
			t.Errorf("big answer: %d bytes, ends %q (error %q)", len(got), got[max(0, len(got)-80):], errText)
		}
	})

	t.Run("health of a running service", func(t *testing.T) {
		got, errText := say(t, h, "health greeter")
		want := fmt.Sprintf("greeter: its node is healthy\n• greeter-%s: ok (LATENCY)\n  address: over NATS", g.Options().Id)
		if errText != "" || latencies.ReplaceAllString(got, "(LATENCY)") != want {
			t.Errorf("health greeter:\n%s\n(error %q)\nwant\n%s", got, errText, want)
		}
	})
	t.Run("health of a service with a dead node", func(t *testing.T) {
		registerDead(t, url, "greeter", "greeter-0dead")
		got, errText := say(t, h, "health greeter")
		dead := "• greeter-0dead: unreachable (LATENCY)\n  nothing answers at its address (NATS: no responders); its process is probably gone\n  address: over NATS"
		live := fmt.Sprintf("• greeter-%s: ok (LATENCY)\n  address: over NATS", g.Options().Id)
		if "greeter-"+g.Options().Id < "greeter-0dead" { // nodes are listed by id
			dead, live = live, dead
		}
		want := "greeter: 1 of 2 nodes are healthy\n" + dead + "\n" + live
		if errText != "" || latencies.ReplaceAllString(got, "(LATENCY)") != want {
			t.Errorf("health greeter:\n%s\n(error %q)\nwant\n%s", got, errText, want)
		}
	})
	t.Run("health errors", func(t *testing.T) {
		for _, tc := range []struct{ text, want string }{
			{"health slow", "slow: its node is not healthy\n• slow-ID: no health endpoint (LATENCY)\n  the node runs but does not serve Debug.Health (a go-micro v4 service must register go-micro's debug handler; botmesh command services do)\n  address: over NATS"},
			{"health hanging", "hanging: its node is not healthy\n• hanging-ID: no answer (LATENCY)\n  no answer within 500ms\n  address: over NATS"},
		} {
			got, errText := say(t, h, tc.text)
			got = latencies.ReplaceAllString(got, "(LATENCY)")
			got = regexp.MustCompile(`-[0-9a-f-]{36}:`).ReplaceAllString(got, "-ID:")
			if errText != "" || got != tc.want {
				t.Errorf("%s:\n%s\n(error %q)\nwant\n%s", tc.text, got, errText, tc.want)
			}
		}
		wantError(t, h, "health greter", `unknown service "greter". Did you mean "greeter"? Type list services to see them all.`)
		wantError(t, h, "health", "which service? Usage: health [service] (list services shows the names)")
		wantError(t, h, "health greeter slow", "health takes one [service], not 2 words")
	})
}

// help lists both patterns.
func TestHelp(t *testing.T) {
	rsp := &chatopsv1.HelpResponse{}
	if err := query.New(nil, nil).Help(context.Background(), &chatopsv1.HelpRequest{}, rsp); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rsp.Commands {
		got = append(got, c.Pattern+" = "+c.Usage)
	}
	if strings.Join(got, "|") != "query = query [service] [method] [json]|health = health [service]" {
		t.Errorf("commands %v", got)
	}
}

// RenderHealth words each state for chat.
func TestRenderHealth(t *testing.T) {
	nodes := []query.NodeHealth{
		{ID: "a-1", Address: "10.0.0.1:9100", State: query.Healthy, Status: "ok", Latency: 1234 * time.Microsecond},
		{ID: "a-2", Address: "10.0.0.2:9100", State: query.Unhealthy, Status: "degraded", Detail: `status "degraded"`, Latency: 250 * time.Millisecond},
		{ID: "a-3", Address: "10.0.0.3:9100", State: query.Unreachable, Detail: "nothing listens at its address (connection refused); its process is probably gone", Latency: 800 * time.Microsecond},
	}
	want := "a: 1 of 3 nodes are healthy\n" +
		"• a-1: ok (1.23ms)\n  address: 10.0.0.1:9100\n" +
		"• a-2: unhealthy (250ms)\n  status \"degraded\"\n  address: 10.0.0.2:9100\n" +
		"• a-3: unreachable (800µs)\n  nothing listens at its address (connection refused); its process is probably gone\n  address: 10.0.0.3:9100"
	if got := query.RenderHealth("a", nodes); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := query.RenderHealth("a", nodes[:1]); got != "a: its node is healthy\n• a-1: ok (1.23ms)\n  address: 10.0.0.1:9100" {
		t.Errorf("one node: %s", got)
	}
	if got := query.RenderHealth("a", append(nodes[:1:1], nodes[0])); !strings.HasPrefix(got, "a: all 2 nodes are healthy\n") {
		t.Errorf("all healthy: %s", got)
	}
}
