package registrycmd_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	registrycmd "github.com/botmesh/botmesh/services/registry-cmd"
	"go-micro.dev/v4/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name.golden (-update rewrites it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update to rewrite):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestRenderList(t *testing.T) {
	for name, list := range map[string][]registrycmd.Listed{
		"list_empty": nil,
		"list_one":   {{Name: "greeter", Nodes: 1}},
		"list_many": {
			{Name: "go.micro.bot.echo", Nodes: 1},
			{Name: "go.micro.bot.query", Nodes: 2},
			{Name: "greeter", Nodes: 3},
			{Name: "payments", Err: errors.New("query timed out")},
		},
	} {
		t.Run(name, func(t *testing.T) { golden(t, name, registrycmd.RenderList(list)) })
	}
}

func greeterService(version string, ids ...string) *registry.Service {
	s := &registry.Service{
		Name:    "greeter",
		Version: version,
		Endpoints: []*registry.Endpoint{
			{
				Name:     "Greeter.Hello",
				Request:  &registry.Value{Name: "HelloRequest", Type: "HelloRequest", Values: []*registry.Value{{Name: "name", Type: "string"}}},
				Response: &registry.Value{Name: "HelloResponse", Type: "HelloResponse", Values: []*registry.Value{{Name: "message", Type: "string"}}},
				Metadata: map[string]string{"stream": "false"},
			},
			{
				Name: "Greeter.Chat",
				Request: &registry.Value{Name: "ChatRequest", Type: "ChatRequest", Values: []*registry.Value{
					{Name: "from", Type: "Person", Values: []*registry.Value{{Name: "name", Type: "string"}, {Name: "langs", Type: "[]string"}}},
					{Name: "text", Type: "string"},
				}},
				Response: &registry.Value{Name: "ChatResponse", Type: "ChatResponse"},
				Metadata: map[string]string{"stream": "true"},
			},
		},
	}
	for _, id := range ids {
		s.Nodes = append(s.Nodes, &registry.Node{
			Id:       id,
			Address:  "10.0.0.5:9100",
			Metadata: map[string]string{"transport": "http", "server": "mucp", "registry": "mdns", "protocol": "mucp", "broker": "http"},
		})
	}
	return s
}

func TestRenderService(t *testing.T) {
	bare := &registry.Service{Name: "legacy", Nodes: []*registry.Node{{Id: "legacy-1", Address: ""}}}
	for name, svcs := range map[string][]*registry.Service{
		"get_one_version":  {greeterService("1.0.0", "greeter-b", "greeter-a")},
		"get_two_versions": {greeterService("2.0.0", "greeter-c"), greeterService("1.0.0", "greeter-a")},
		"get_bare":         {bare},
		"get_service_meta": {{Name: "billing", Version: "3", Metadata: map[string]string{"team": "payments", "tier": "1"}, Nodes: []*registry.Node{{Id: "billing-1", Address: "_INBOX.abc"}}}},
	} {
		t.Run(name, func(t *testing.T) { golden(t, name, registrycmd.RenderService(svcs)) })
	}
}
