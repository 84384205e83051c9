package query_test

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/greeter"
	"github.com/botmesh/botmesh/services/query"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
)

// startGreeterOver starts the greeter on its own mesh whose command RPCs
// use transport ("http" or "nats").
func startGreeterOver(t *testing.T, natsURL, transport string) server.Server {
	t.Helper()
	m := meshtest.Mesh(t, nil, func(c *mesh.Config) {
		c.NATSURL = natsURL
		c.Transport = transport
		c.ServerAddress = "127.0.0.1:0"
	})
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

// One service served over http by one node and over NATS by another, plus
// a node on a transport botmesh does not speak: query and health, run on
// the NATS transport or on http, call each node the way it serves, and
// health shows where each node is and why one cannot be called.
func TestMixedTransports(t *testing.T) {
	ns := meshtest.NATS(t)
	url := ns.ClientURL()
	overHTTP := startGreeterOver(t, url, "http")
	overNATS := startGreeterOver(t, url, "nats")
	reg := meshtest.Mesh(t, ns, nil).Registry()
	if err := reg.Register(&registry.Service{Name: greeter.Name, Version: "1.0.0", Nodes: []*registry.Node{{
		Id: "greeter-quic", Address: "127.0.0.1:1",
		Metadata: map[string]string{"transport": "quic", "server": "mucp", "protocol": "mucp", "registry": "nats", "broker": "http"},
	}}}); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitRegistered(t, reg, greeter.Name, "greeter-quic")

	lines := map[string]string{
		"greeter-" + overHTTP.Options().Id: fmt.Sprintf("• greeter-%s: ok (LATENCY)\n  address: %s (http)", overHTTP.Options().Id, overHTTP.Options().Address),
		"greeter-" + overNATS.Options().Id: fmt.Sprintf("• greeter-%s: ok (LATENCY)\n  address: over NATS", overNATS.Options().Id),
		"greeter-quic":                     "• greeter-quic: unreachable (LATENCY)\n  it serves over quic, which botmesh cannot call (it calls go-micro nodes over http, NATS and gRPC)\n  address: 127.0.0.1:1 (quic)",
	}
	ids := make([]string, 0, len(lines))
	for id := range lines {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	want := "greeter: 2 of 3 nodes are healthy"
	for _, id := range ids {
		want += "\n" + lines[id]
	}
	if !regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(overHTTP.Options().Address) {
		t.Fatalf("the http node listens at %q", overHTTP.Options().Address)
	}

	for _, transport := range []string{"nats", "http"} {
		t.Run("from a mesh on "+transport, func(t *testing.T) {
			m := meshtest.Mesh(t, ns, func(c *mesh.Config) { c.Transport = transport })
			h := query.New(m.Registry(), m.NewClient(), query.WithLogger(meshtest.Logger(t)),
				query.WithTimeout(5*time.Second), query.WithHealthTimeout(3*time.Second))
			got, errText := say(t, h, "health greeter")
			if got = latencies.ReplaceAllString(got, "(LATENCY)"); errText != "" || got != want {
				t.Errorf("health greeter:\n%s\n(error %q)\nwant\n%s", got, errText, want)
			}
			// Load balanced over the two nodes it can call, never the
			// third: every call is answered.
			for i := range 20 {
				wantResult(t, h, fmt.Sprintf(`query greeter Greeter.Hello {"name":"n%d"}`, i), fmt.Sprintf("{\n  \"message\": \"Hello, n%d!\"\n}", i))
			}
		})
	}
	if t.Failed() {
		return
	}

	t.Run("a service only served over a transport botmesh cannot call", func(t *testing.T) {
		if err := reg.Register(&registry.Service{Name: "legacy", Version: "0.9", Nodes: []*registry.Node{{
			Id: "legacy-1", Address: "127.0.0.1:1", Metadata: map[string]string{"transport": "quic", "server": "mucp", "protocol": "mucp"},
		}}}); err != nil {
			t.Fatal(err)
		}
		meshtest.WaitRegistered(t, reg, "legacy", "legacy-1")
		m := meshtest.Mesh(t, ns, nil)
		h := query.New(m.Registry(), m.NewClient(), query.WithTimeout(5*time.Second))
		wantError(t, h, `query legacy Legacy.Get {}`, "legacy (node legacy-1) serves over quic, which botmesh cannot call (it calls go-micro nodes over http, NATS and gRPC)")
		got, _ := say(t, h, "health legacy")
		if !strings.Contains(got, "it serves over quic, which botmesh cannot call") {
			t.Errorf("health legacy:\n%s", got)
		}
	})
}
