package greeter_test

import (
	"context"
	"strings"
	"testing"

	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/greeter"
	greeterv1 "github.com/botmesh/botmesh/services/greeter/proto/greeter/v1"
	dbgpb "go-micro.dev/v4/debug/proto"
	merrors "go-micro.dev/v4/errors"
)

// The greeter as a client of the mesh sees it: Greeter.Hello through its
// generated client, errors as go-micro errors, and Debug.Health.
func TestGreeter(t *testing.T) {
	s := meshtest.NATS(t)
	srv, err := greeter.New(meshtest.Mesh(t, s, nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	client := meshtest.Mesh(t, s, nil)
	// Found by the client's registry first, as a caller would wait for it
	// (a CI run called it at once: "service greeter: not found").
	meshtest.WaitRegistered(t, client.Registry(), greeter.Name, greeter.Name+"-"+srv.Options().Id)
	c := client.NewClient()
	ctx := context.Background()

	g := greeterv1.NewGreeterService(greeter.Name, c)
	rsp, err := g.Hello(ctx, &greeterv1.HelloRequest{Name: " Ada "})
	if err != nil || rsp.GetMessage() != "Hello, Ada!" {
		t.Errorf("Hello(Ada) = %q, %v", rsp.GetMessage(), err)
	}
	for name, want := range map[string]string{
		"":                       "name is required",
		strings.Repeat("é", 101): "name is longer than 100 characters",
	} {
		_, err := g.Hello(ctx, &greeterv1.HelloRequest{Name: name})
		e := merrors.Parse(err.Error())
		if e.Code != 400 || e.Id != greeter.Name || e.Detail != want {
			t.Errorf("Hello(%q): %v, want a 400 %q", name, err, want)
		}
	}
	h, err := dbgpb.NewDebugService(greeter.Name, c).Health(ctx, &dbgpb.HealthRequest{})
	if err != nil || h.GetStatus() != "ok" {
		t.Errorf("Debug.Health = %v, %v", h, err)
	}
	if v := srv.Options().Version; v != greeter.Version {
		t.Errorf("version %q", v)
	}
}
