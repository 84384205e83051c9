package registrycmd_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	registrycmd "github.com/botmesh/botmesh/services/registry-cmd"
	"go-micro.dev/v4/registry"
)

func TestParseDefinition(t *testing.T) {
	svc, err := registrycmd.ParseDefinition("```json\n"+`{"name":"billing","version":"1.0.0","metadata":{"team":"pay"},
 "endpoints":[{"name":"Billing.Charge","request":{"name":"ChargeRequest","type":"ChargeRequest"}}],
 "nodes":[{"id":"billing-1","address":"10.0.0.5:9090","metadata":{"zone":"a"}}]}`+"\n```", registrycmd.ForRegister)
	if err != nil {
		t.Fatal(err)
	}
	want := &registry.Service{
		Name: "billing", Version: "1.0.0", Metadata: map[string]string{"team": "pay"},
		Endpoints: []*registry.Endpoint{{Name: "Billing.Charge", Request: &registry.Value{Name: "ChargeRequest", Type: "ChargeRequest"}}},
		Nodes:     []*registry.Node{{Id: "billing-1", Address: "10.0.0.5:9090", Metadata: map[string]string{"zone": "a"}}},
	}
	if !reflect.DeepEqual(svc, want) {
		g, _ := json.Marshal(svc)
		t.Errorf("parsed %s", g)
	}
	if _, err := registrycmd.ParseDefinition(`{"name":"billing","nodes":[{"id":"billing-1"}]}`, registrycmd.ForDeregister); err != nil {
		t.Errorf("deregister with name and node id only: %v", err)
	}
}

// Every bad DEFINITION gets a sentence saying what is wrong.
func TestParseDefinitionErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		p        registrycmd.Purpose
		want     string
	}{
		{"empty", "", registrycmd.ForRegister, "a DEFINITION is needed: a go-micro service in JSON, e.g. " + registrycmd.Example},
		{"not JSON", "billing please", registrycmd.ForRegister, `"billing please" is not a definition: a definition is a go-micro service in JSON, e.g. ` + registrycmd.Example},
		{"malformed", `{"name":"billing",`, registrycmd.ForRegister, "malformed JSON at line 1, column 19: the JSON ends too early: a closing } ] or \" is missing (near `\":\"billing\",`)"},
		{"not an object", `["billing"]`, registrycmd.ForRegister, "malformed JSON at line 1, column 1: the value should be an object { }, not array (near `[\"billing\"]`)"},
		{"unknown field", `{"name":"billing","nodez":[]}`, registrycmd.ForRegister, `unknown field "nodez" in the definition (a service has name, version, metadata, endpoints, nodes; a node has id, address, metadata)`},
		{"unknown node field", `{"name":"billing","nodes":[{"id":"b-1","addr":"x:1"}]}`, registrycmd.ForRegister, `unknown field "addr" in the definition (a service has name, version, metadata, endpoints, nodes; a node has id, address, metadata)`},
		{"wrong type", `{"name":"billing","nodes":{"id":"b-1"}}`, registrycmd.ForRegister, "malformed JSON at line 1, column 27: field nodes should be a list [ ], not object (near `ng\",\"nodes\":{\"id\":\"b-1\"}`)"},
		{"no name", `{"nodes":[{"id":"b-1","address":"x:1"}]}`, registrycmd.ForRegister, "name is missing"},
		{"name with a space", `{"name":"bill ing","nodes":[{"id":"b-1","address":"x:1"}]}`, registrycmd.ForRegister, `name "bill ing" has spaces or control characters`},
		{"long name", `{"name":"` + strings.Repeat("n", 201) + `","nodes":[{"id":"b-1","address":"x:1"}]}`, registrycmd.ForRegister, "name is 201 bytes long; the limit is 200"},
		{"no nodes", `{"name":"billing"}`, registrycmd.ForRegister, `the definition has no nodes: give at least one, e.g. "nodes":[{"id":"billing-1","address":"10.0.0.5:9090"}]`},
		{"null node", `{"name":"billing","nodes":[null]}`, registrycmd.ForRegister, "node 1 is null"},
		{"node without id", `{"name":"billing","nodes":[{"address":"x:1"}]}`, registrycmd.ForRegister, "node 1 id is missing"},
		{"node without address", `{"name":"billing","nodes":[{"id":"b-1"}]}`, registrycmd.ForRegister, `node "b-1" address is missing`},
		{"same id twice", `{"name":"billing","nodes":[{"id":"b-1","address":"x:1"},{"id":"b-1","address":"x:2"}]}`, registrycmd.ForRegister, `node id "b-1" appears twice`},
		{"endpoint without name", `{"name":"billing","nodes":[{"id":"b-1","address":"x:1"}],"endpoints":[{}]}`, registrycmd.ForRegister, "endpoint 1 name is missing"},
		{"deregister without node id", `{"name":"billing","nodes":[{}]}`, registrycmd.ForDeregister, "node 1 id is missing"},
		{"curly quotes", `{“name”:“billing”}`, registrycmd.ForRegister, "malformed JSON at line 1, column 2: invalid character '“' looking for beginning of object key string; the text has curly quotes (“ ” ‘ ’), which JSON does not accept: your chat app may have changed them, so type straight quotes (\") or send the JSON as code (near `{“name”:“bill`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, err := registrycmd.ParseDefinition(tc.in, tc.p)
			var de *registrycmd.DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, %v; want a DefinitionError", svc, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n%s\nwant\n%s", err, tc.want)
			}
		})
	}
}

// FuzzParseDefinition feeds untrusted DEFINITION text (what follows
// "register service" in a chat message) to the parser: it never panics,
// every error is a readable sentence, and whatever it accepts is a valid
// registration that survives a JSON round trip.
func FuzzParseDefinition(f *testing.F) {
	for _, s := range []string{
		registrycmd.Example,
		`{"name":"billing","nodes":[{"id":"billing-1"}]}`,
		"```json\n{\"name\":\"a\",\"nodes\":[{\"id\":\"a-1\",\"address\":\"h:1\"}]}\n```",
		`{"name":"a","nodes":[{"id":"a-1","address":"h:1"},{"id":"a-1","address":"h:2"}]}`,
		`{"name":"a","endpoints":[{"name":"A.B","request":{"name":"R","type":"R","values":[{"name":"x","type":"string"}]}}],"nodes":[{"id":"a-1","address":"h:1"}]}`,
		`{"name":"billing",`, `[]`, `null`, `{“name”:“x”}`, "", "{\"name\":\"\xff\"}",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, deregister bool) {
		p := registrycmd.ForRegister
		if deregister {
			p = registrycmd.ForDeregister
		}
		svc, err := registrycmd.ParseDefinition(in, p)
		if err != nil {
			if svc != nil {
				t.Fatalf("error %v with a service", err)
			}
			msg := err.Error()
			if msg == "" || !utf8.ValidString(msg) || len(msg) > 2000 {
				t.Fatalf("unreadable error %q", msg)
			}
			var de *registrycmd.DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a DefinitionError", err, err)
			}
			return
		}
		if svc.Name == "" || len(svc.Nodes) == 0 {
			t.Fatalf("accepted %+v", svc)
		}
		ids := map[string]bool{}
		for _, n := range svc.Nodes {
			if n == nil || n.Id == "" || ids[n.Id] || p == registrycmd.ForRegister && n.Address == "" {
				t.Fatalf("accepted node %+v", n)
			}
			ids[n.Id] = true
		}
		again, err := json.Marshal(svc)
		if err != nil {
			t.Fatal(err)
		}
		svc2, err := registrycmd.ParseDefinition(string(again), p)
		if err != nil || !reflect.DeepEqual(svc, svc2) {
			t.Fatalf("round trip of %s: %v", again, err)
		}
	})
}
