package registrycmd

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/botmesh/botmesh/services/registry-cmd/jsonarg"
	"go-micro.dev/v4/registry"
)

// Example is a service definition, shown when one is missing;
// DeregisterExample is enough to deregister its node.
const (
	Example           = `{"name":"billing","version":"1.0.0","nodes":[{"id":"billing-1","address":"10.0.0.5:9090"}]}`
	DeregisterExample = `{"name":"billing","nodes":[{"id":"billing-1"}]}`
)

// Limits on a definition; a registration is for chat, not bulk data.
const (
	maxNameBytes  = 200
	maxNodes      = 100
	maxEndpoints  = 500
	maxFieldBytes = 300
)

// DefinitionError says what is wrong with a service definition.
type DefinitionError struct {
	Msg string
	Err error
}

func (e *DefinitionError) Error() string { return e.Msg }

func (e *DefinitionError) Unwrap() error { return e.Err }

// Purpose says what a definition is for: registering needs node
// addresses, deregistering only the name and node ids.
type Purpose int

// The purposes of a definition.
const (
	ForRegister Purpose = iota
	ForDeregister
)

// ParseDefinition reads DEFINITION, a go-micro registry.Service in JSON
// (name, version, metadata, endpoints, nodes; nothing else), and checks it.
// Errors are *DefinitionError with a sentence for the user; malformed JSON
// says where (a *jsonarg.SyntaxError inside).
func ParseDefinition(text string, p Purpose) (*registry.Service, error) {
	text = jsonarg.Unwrap(text)
	if t := strings.TrimSpace(text); t != "" && !strings.HasPrefix(t, "{") && !strings.HasPrefix(t, "[") {
		return nil, &DefinitionError{Msg: fmt.Sprintf("%q is not a definition: a definition is a go-micro service in JSON, e.g. %s", clip(t, 40), Example)}
	}
	var svc registry.Service
	err := jsonarg.Decode([]byte(text), &svc, true)
	var unknown *jsonarg.UnknownFieldError
	switch {
	case errors.Is(err, jsonarg.ErrEmpty):
		return nil, &DefinitionError{Msg: "a DEFINITION is needed: a go-micro service in JSON, e.g. " + Example, Err: err}
	case errors.As(err, &unknown):
		return nil, &DefinitionError{Msg: fmt.Sprintf("unknown field %q in the definition (a service has name, version, metadata, endpoints, nodes; a node has id, address, metadata)", clip(unknown.Field, 60)), Err: err}
	case err != nil:
		return nil, &DefinitionError{Msg: err.Error(), Err: err}
	}
	if err := check(&svc, p); err != nil {
		return nil, &DefinitionError{Msg: err.Error()}
	}
	return &svc, nil
}

func check(s *registry.Service, p Purpose) error {
	if err := word("name", s.Name, maxNameBytes, true); err != nil {
		return err
	}
	if err := word("version", s.Version, maxFieldBytes, false); err != nil {
		return err
	}
	if len(s.Nodes) == 0 {
		return fmt.Errorf("the definition has no nodes: give at least one, e.g. \"nodes\":[{\"id\":\"%s-1\",\"address\":\"10.0.0.5:9090\"}]", clip(s.Name, 40))
	}
	if len(s.Nodes) > maxNodes {
		return fmt.Errorf("the definition has %d nodes; at most %d at a time", len(s.Nodes), maxNodes)
	}
	ids := map[string]bool{}
	for i, n := range s.Nodes {
		if n == nil {
			return fmt.Errorf("node %d is null", i+1)
		}
		if err := word(fmt.Sprintf("node %d id", i+1), n.Id, maxFieldBytes, true); err != nil {
			return err
		}
		if ids[n.Id] {
			return fmt.Errorf("node id %q appears twice", clip(n.Id, 60))
		}
		ids[n.Id] = true
		if err := word(fmt.Sprintf("node %q address", clip(n.Id, 60)), n.Address, maxFieldBytes, p == ForRegister); err != nil {
			return err
		}
	}
	if len(s.Endpoints) > maxEndpoints {
		return fmt.Errorf("the definition has %d endpoints; at most %d", len(s.Endpoints), maxEndpoints)
	}
	for i, e := range s.Endpoints {
		if e == nil {
			return fmt.Errorf("endpoint %d is null", i+1)
		}
		if err := word(fmt.Sprintf("endpoint %d name", i+1), e.Name, maxFieldBytes, true); err != nil {
			return err
		}
	}
	return nil
}

// word checks one identifier-like field: no spaces or control characters,
// not too long, present if required.
func word(what, v string, limit int, required bool) error {
	switch {
	case v == "" && required:
		return fmt.Errorf("%s is missing", what)
	case len(v) > limit:
		return fmt.Errorf("%s is %d bytes long; the limit is %d", what, len(v), limit)
	case strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("%s %q has spaces or control characters", what, clip(v, 60))
	}
	return nil
}
