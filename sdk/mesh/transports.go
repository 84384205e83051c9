package mesh

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/botmesh/botmesh/sdk/natstransport"
	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/transport"
)

// Transports a node can be called over, whatever the mesh's own transport:
// go-micro v4 servers register theirs in the node's metadata (key
// "transport", from server/rpc_server.go Register).
const (
	nodeTransportHTTP = "http"
	nodeTransportNATS = "nats" // botmesh's natstransport and go-micro's plugin: one protocol
	nodeTransportGRPC = "grpc" // go-micro's grpc server plugin (server and transport "grpc")
)

// NodeTransport returns the transport node serves over, as its metadata
// says ("http", "nats", "grpc", …), or "" when it does not say (a service
// registered by hand).
func NodeTransport(node *registry.Node) string {
	if node == nil {
		return ""
	}
	return strings.ToLower(node.Metadata["transport"])
}

// TransportError says a node serves over a transport botmesh cannot call.
type TransportError struct {
	// Service and Node name the node; Transport is what it serves over.
	Service, Node, Transport string
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("%s (node %s) serves over %s, which botmesh cannot call (it calls go-micro nodes over http, NATS and gRPC)", e.Service, e.Node, e.Transport)
}

// CanCall reports whether the mesh's clients can call node: nil if so, else
// a *TransportError. Nodes that do not name their transport are called
// over the mesh's own.
func (m *Mesh) CanCall(service string, node *registry.Node) error {
	switch t := NodeTransport(node); t {
	case "", nodeTransportHTTP, nodeTransportNATS, nodeTransportGRPC, m.tr.String():
		return nil
	default:
		return &TransportError{Service: service, Node: node.Id, Transport: t}
	}
}

// callers are the clients the mesh's clients use for nodes that serve over
// another transport than the mesh's own; made on first use.
type callers struct {
	once sync.Once
	http client.Client
	grpc client.Client
	nats *natstransport.Client
}

func (m *Mesh) callersFor() *callers {
	m.others.once.Do(func() {
		base := []client.Option{
			client.ContentType("application/protobuf"),
			client.Registry(m.reg),
			client.Broker(m.brk),
			client.WithLogger(m.mlog),
		}
		if t, ok := m.tr.(*natstransport.Transport); ok {
			m.others.nats = natstransport.NewClient(t, base...).(*natstransport.Client)
		} else {
			m.others.nats = natstransport.NewClient(natstransport.New(m.NATS(), transport.Logger(m.mlog)), base...).(*natstransport.Client)
		}
		m.others.http = client.NewClient(append(base, noHTTPPool, client.Transport(transport.NewHTTPTransport(transport.Logger(m.mlog))))...)
		m.others.grpc = grpcclient.NewClient(base...)
	})
	return &m.others
}

// perNode is the innermost call wrapper of the mesh's clients: it calls
// each node over the transport the node serves over (its registry
// metadata), so one client reaches http and NATS nodes alike, and answers a
// node it cannot call with a *TransportError without trying.
func (m *Mesh) perNode(next client.CallFunc) client.CallFunc {
	own := m.tr.String()
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		if opts.Context != nil {
			if n, ok := opts.Context.Value(nodeKey{}).(*registry.Node); ok && n.Address == node.Address {
				node = n // WithNode: the node as registered, not the address alone
			}
		}
		t := NodeTransport(node)
		switch {
		case t == "" || t == own:
			return next(ctx, node, req, rsp, opts)
		case t == nodeTransportNATS:
			return m.callersFor().nats.CallNode(ctx, node, req, rsp, opts)
		case t == nodeTransportHTTP, t == nodeTransportGRPC:
			// One attempt at this node's address: the caller's
			// wrappers and retries have run around this call already.
			c := m.callersFor().http
			if t == nodeTransportGRPC {
				c = m.callersFor().grpc
			}
			return c.Call(ctx, req, rsp, func(o *client.CallOptions) {
				o.Address = []string{node.Address}
				o.Retries = 0
				if opts.RequestTimeout > 0 {
					o.RequestTimeout = opts.RequestTimeout
				}
				if opts.ConnectionTimeout > 0 {
					o.ConnectionTimeout = opts.ConnectionTimeout
				}
				if opts.DialTimeout > 0 {
					o.DialTimeout = opts.DialTimeout
				}
			})
		default:
			return &TransportError{Service: req.Service(), Node: node.Id, Transport: t}
		}
	}
}

// perNodeClient adds perNode to every call as its innermost wrapper, after
// the client's and the call's own wrappers, so that they all see its
// errors.
type perNodeClient struct {
	client.Client
	m *Mesh
}

func (c perNodeClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	if len(opts) == 0 {
		return c.Client.Call(ctx, req, rsp, c.m.perNodeOpts...)
	}
	all := make([]client.CallOption, 0, len(opts)+len(c.m.perNodeOpts))
	all = append(append(all, opts...), c.m.perNodeOpts...)
	return c.Client.Call(ctx, req, rsp, all...)
}

// callable is a selector filter that keeps the nodes the mesh can call, or
// every node if it can call none (the call then fails saying why).
func (m *Mesh) callable(svcs []*registry.Service) []*registry.Service {
	drop := false
	for _, s := range svcs {
		for _, n := range s.Nodes {
			if m.CanCall(s.Name, n) != nil {
				drop = true
			}
		}
	}
	if !drop {
		return svcs
	}
	out := make([]*registry.Service, 0, len(svcs))
	for _, s := range svcs {
		keep := *s
		keep.Nodes = nil
		for _, n := range s.Nodes {
			if m.CanCall(s.Name, n) == nil {
				keep.Nodes = append(keep.Nodes, n)
			}
		}
		if len(keep.Nodes) > 0 {
			out = append(out, &keep)
		}
	}
	if len(out) == 0 {
		return svcs
	}
	return out
}

type nodeKey struct{}

// WithNode is a call option that calls node itself, by its address, over
// the transport it serves over, with no load balancing (client.WithAddress
// alone knows the address but not the transport).
func WithNode(node *registry.Node) client.CallOption {
	return func(o *client.CallOptions) {
		o.Address = []string{node.Address}
		ctx := o.Context
		if ctx == nil {
			ctx = context.Background()
		}
		o.Context = context.WithValue(ctx, nodeKey{}, node)
	}
}
