package directory

import (
	"context"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
)

// Selector returns a go-micro selector that picks nodes from the directory:
// a random one first, the next one on each retry, skipping nodes marked
// down. Pass it to the router's client
// (client.Selector) so RPCs go where help says the services are.
func (d *Directory) Selector() selector.Selector { return dirSelector{d} }

// MarkDown tells the directory that a call to node failed before reaching
// its handler (the node is gone or unreachable); the selector avoids it for
// a while and the next resync settles whether it is still registered.
func (d *Directory) MarkDown(service, node string) { d.markDown(service, node) }

// MarkUp tells the directory that a call to node was delivered (whatever
// the command answered): the node is up, and if it cannot be reached later
// it is more likely reconnecting than gone.
func (d *Directory) MarkUp(service, node string) { d.markUp(service, node) }

// WorthRetrying reports whether a call to service that could not be
// delivered should be tried again a moment later, until its deadline: the
// service is still in the view, and either the NATS connection is settling
// after an outage (Settling) or one of its nodes has been reached before.
// A node that answered and now cannot be reached is most likely
// reconnecting; one that never answered (registered, then killed) most
// likely is not, and the call fails after a short try instead.
func (d *Directory) WorthRetrying(service string) bool {
	d.mu.RLock()
	e := d.services[service]
	answered := e != nil && len(e.answered) > 0
	d.mu.RUnlock()
	if e == nil {
		return false
	}
	return answered || d.Settling()
}

type dirSelector struct{ d *Directory }

func (s dirSelector) Init(...selector.Option) error { return nil }

func (s dirSelector) Options() selector.Options {
	return selector.Options{Registry: s.d.reg}
}

func (s dirSelector) Select(service string, opts ...selector.SelectOption) (selector.Next, error) {
	var versions []string
	if len(opts) > 0 {
		var o selector.SelectOptions
		for _, opt := range opts {
			opt(&o)
		}
		if o.Context != nil {
			versions, _ = o.Context.Value(versionKey{}).([]string)
		}
	}
	if len(s.d.nodes(service, versions...)) == 0 {
		return nil, selector.ErrNotFound
	}
	return s.d.rotation(service, versions), nil
}

// SelectVersion is a select option that picks only nodes of one of
// versions, or any node if there are none: for the Help call of one
// version (HelpVersion), and for a command only some versions serve
// (Command.Versions).
func SelectVersion(versions ...string) selector.SelectOption {
	return func(o *selector.SelectOptions) {
		if len(versions) == 0 {
			return
		}
		ctx := o.Context
		if ctx == nil {
			ctx = context.Background()
		}
		o.Context = context.WithValue(ctx, versionKey{}, versions)
	}
}

// Mark is called by the go-micro client after every call, with its error;
// the router marks transport failures itself (MarkDown), where it can tell
// them from a command's own errors.
func (s dirSelector) Mark(string, *registry.Node, error) {}

func (s dirSelector) Reset(string) {}

func (s dirSelector) Close() error { return nil }

func (s dirSelector) String() string { return "botmesh-directory" }
