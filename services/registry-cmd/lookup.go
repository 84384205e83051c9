package registrycmd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/botmesh/botmesh/sdk/suggest"
	"go-micro.dev/v4/registry"
)

// UnknownServiceError says a service is not in the registry, with the
// registered names closest to it.
type UnknownServiceError struct {
	// Name is the name asked for.
	Name string
	// Suggestions are registered names close to Name, best first.
	Suggestions []string
}

func (e *UnknownServiceError) Error() string {
	s := fmt.Sprintf("unknown service %q.", clip(e.Name, 80))
	if len(e.Suggestions) > 0 {
		s += " Did you mean " + suggest.Quote(e.Suggestions) + "?"
	}
	return s + " Type list services to see them all."
}

// RegistryError says the registry failed or refused an operation.
type RegistryError struct {
	// Op is what was asked: "list services" or "get service NAME".
	Op  string
	Err error
}

func (e *RegistryError) Error() string {
	return fmt.Sprintf("the registry could not %s: %v", e.Op, e.Err)
}

func (e *RegistryError) Unwrap() error { return e.Err }

// Lookup returns the registrations (one per version) of the service called
// name. A name with no live node is an *UnknownServiceError whose
// suggestions come from the registry's list; a registry failure is a
// *RegistryError.
func Lookup(ctx context.Context, reg registry.Registry, name string) ([]*registry.Service, error) {
	svcs, err := reg.GetService(name, registry.GetContext(ctx))
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return nil, &RegistryError{Op: "get service " + clip(name, 80), Err: err}
	}
	if nodeCount(svcs) > 0 {
		return svcs, nil
	}
	list, lerr := reg.ListServices(registry.ListContext(ctx))
	names := make([]string, 0, len(list))
	if lerr == nil {
		for _, s := range list {
			names = append(names, s.Name)
		}
	}
	return nil, &UnknownServiceError{Name: name, Suggestions: suggest.Closest(name, names)}
}

// Names returns the distinct names of the registered services, sorted.
func Names(ctx context.Context, reg registry.Registry) ([]string, error) {
	list, err := reg.ListServices(registry.ListContext(ctx))
	if err != nil {
		return nil, &RegistryError{Op: "list services", Err: err}
	}
	seen := map[string]bool{}
	var names []string
	for _, s := range list {
		if s != nil && s.Name != "" && !seen[s.Name] {
			seen[s.Name] = true
			names = append(names, s.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// Listed is one line of `list services`.
type Listed struct {
	Name string
	// Nodes is the number of live nodes, over every version.
	Nodes int
	// Err is set when the service's nodes could not be counted.
	Err error
}

// lookupParallel bounds the registry lookups `list services` runs at once
// (the NATS and mdns registries wait ~100 ms per lookup).
const lookupParallel = 16

// List returns every registered service with its node count, sorted by
// name. Services that have no node left by the time they are counted
// (stopped meanwhile) are left out.
func List(ctx context.Context, reg registry.Registry) ([]Listed, error) {
	names, err := Names(ctx, reg)
	if err != nil {
		return nil, err
	}
	out := make([]Listed, len(names))
	sem := make(chan struct{}, lookupParallel)
	var wg sync.WaitGroup
	for i, name := range names {
		out[i].Name = name
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			svcs, err := reg.GetService(name, registry.GetContext(ctx))
			if err != nil && !errors.Is(err, registry.ErrNotFound) {
				out[i].Err = err
				return
			}
			out[i].Nodes = nodeCount(svcs)
		})
	}
	wg.Wait()
	kept := out[:0]
	for _, l := range out {
		if l.Nodes > 0 || l.Err != nil {
			kept = append(kept, l)
		}
	}
	return kept, nil
}

func nodeCount(svcs []*registry.Service) int {
	n := 0
	for _, s := range svcs {
		if s != nil {
			n += len(s.Nodes)
		}
	}
	return n
}

// clip shortens s to n bytes at a character boundary, with an ellipsis.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n] + "…"
}
