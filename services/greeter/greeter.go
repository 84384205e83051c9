// Package greeter is the demo go-micro service that botmesh runs out of the
// box, so that `query` and `health` have something to call: an ordinary
// go-micro service (not a command service) with a protobuf handler,
// Greeter.Hello, and go-micro's Debug handler for health checks.
//
//	query greeter Greeter.Hello {"name":"Ada"}   →   {"message": "Hello, Ada!"}
package greeter

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/botmesh/botmesh/sdk/mesh"
	greeterv1 "github.com/botmesh/botmesh/services/greeter/proto/greeter/v1"
	dbghandler "go-micro.dev/v4/debug/handler"
	dbgpb "go-micro.dev/v4/debug/proto"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
)

// Name is the registry name the greeter serves under by default.
const Name = "greeter"

// Version is the version the greeter registers.
const Version = "1.0.0"

// MaxNameChars bounds the name Hello accepts.
const MaxNameChars = 100

// Handler implements Greeter.
type Handler struct {
	// Service is the registry name used in errors (Name if empty).
	Service string
}

var _ greeterv1.GreeterHandler = Handler{}

// Hello greets req.Name. An empty or overlong name is a bad request.
func (h Handler) Hello(_ context.Context, req *greeterv1.HelloRequest, rsp *greeterv1.HelloResponse) error {
	service := h.Service
	if service == "" {
		service = Name
	}
	name := strings.TrimSpace(req.GetName())
	switch {
	case name == "":
		return merrors.BadRequest(service, "name is required")
	case utf8.RuneCountInString(name) > MaxNameChars:
		return merrors.BadRequest(service, "name is longer than %d characters", MaxNameChars)
	}
	rsp.Message = "Hello, " + name + "!"
	return nil
}

// New returns the greeter as a go-micro server called name on m's registry
// and transport, serving Greeter and go-micro's Debug handler (Debug.Health,
// which `health` asks for). Start it to register it; Stop deregisters it.
// opts come last and win.
func New(m *mesh.Mesh, name string, opts ...server.Option) (server.Server, error) {
	if name == "" {
		name = Name
	}
	srv := m.NewServer(name, append([]server.Option{server.Version(Version)}, opts...)...)
	if err := greeterv1.RegisterGreeterHandler(srv, Handler{Service: name}); err != nil {
		return nil, fmt.Errorf("greeter: register handler: %w", err)
	}
	if err := dbgpb.RegisterDebugHandler(srv, dbghandler.NewHandler(m.NewClient()), server.InternalHandler(true)); err != nil {
		return nil, fmt.Errorf("greeter: register debug handler: %w", err)
	}
	return srv, nil
}
