package query

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/botmesh/botmesh/sdk/mesh"
	registrycmd "github.com/botmesh/botmesh/services/registry-cmd"
	"go-micro.dev/v4/client"
	dbgpb "go-micro.dev/v4/debug/proto"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
)

// State is what a node answered to Debug.Health.
type State string

// The states of a node.
const (
	// Healthy: Debug.Health answered status "ok".
	Healthy State = "ok"
	// Unhealthy: Debug.Health answered another status.
	Unhealthy State = "unhealthy"
	// NoHealth: the node answered, but serves no Debug handler (go-micro
	// v4 does not mount it by itself; botmesh command services do).
	NoHealth State = "no health endpoint"
	// Failing: the node answered Debug.Health with an error.
	Failing State = "error"
	// Unreachable: nothing answers at the node's address.
	Unreachable State = "unreachable"
	// Timeout: no answer within the health timeout.
	Timeout State = "no answer"
)

// NodeHealth is the health of one node.
type NodeHealth struct {
	ID, Address, Version string
	// Transport is what the node serves over, as it registered it
	// ("http", "nats", …; empty if it does not say).
	Transport string
	State     State
	// Status is what Debug.Health answered (for Healthy and Unhealthy).
	Status string
	// Detail explains a state other than Healthy.
	Detail string
	// Latency is how long the node took to answer, or to fail.
	Latency time.Duration
}

// health runs `health SERVICE`.
func (h *Handler) health(ctx context.Context, args []string) (string, error) {
	switch {
	case len(args) < 2:
		return "", &UsageError{Msg: "which service? Usage: health [service] (list services shows the names)"}
	case len(args) > 2:
		return "", &UsageError{Msg: fmt.Sprintf("health takes one [service], not %d words", len(args)-1)}
	}
	name := args[1]
	svcs, err := registrycmd.Lookup(ctx, h.reg, name)
	if err != nil {
		return "", err
	}
	return RenderHealth(name, h.Check(ctx, name, svcs)), nil
}

// Check asks every node of svcs for Debug.Health, all at once, each by its
// own address (not through load balancing), within the health timeout.
// The result is sorted by node id.
func (h *Handler) Check(ctx context.Context, service string, svcs []*registry.Service) []NodeHealth {
	type checked struct {
		NodeHealth
		node *registry.Node
	}
	var nodes []checked
	for _, s := range svcs {
		for _, n := range s.Nodes {
			if n != nil {
				nodes = append(nodes, checked{NodeHealth{ID: n.Id, Address: n.Address, Version: s.Version, Transport: mesh.NodeTransport(n)}, n})
			}
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	out := make([]NodeHealth, len(nodes))
	for i := range nodes {
		out[i] = nodes[i].NodeHealth
	}
	dbg := dbgpb.NewDebugService(service, h.cl)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			nctx, cancel, limit := deadline(ctx, h.healthTimeout)
			defer cancel()
			started := time.Now()
			rsp, err := dbg.Health(nctx, &dbgpb.HealthRequest{Service: service},
				mesh.WithNode(nodes[i].node),
				client.WithRetries(0),
				client.WithCallWrapper(connectionTimeout),
				client.WithRequestTimeout(limit))
			out[i].Latency = time.Since(started)
			classify(nctx, &out[i], rsp, err, limit)
		})
	}
	wg.Wait()
	return out
}

func classify(ctx context.Context, n *NodeHealth, rsp *dbgpb.HealthResponse, err error, limit time.Duration) {
	if err == nil {
		n.Status = rsp.GetStatus()
		if n.Status == "ok" {
			n.State = Healthy
			return
		}
		n.State = Unhealthy
		n.Detail = fmt.Sprintf("status %q", clip(n.Status, 80))
		return
	}
	e := merrors.Parse(err.Error())
	detail := e.Detail
	if detail == "" {
		detail = err.Error()
	}
	var wrongTransport *mesh.TransportError
	switch {
	case errors.As(err, &wrongTransport):
		n.State = Unreachable
		n.Detail = fmt.Sprintf("it serves over %s, which botmesh cannot call (it calls go-micro nodes over http, NATS and gRPC)", wrongTransport.Transport)
	case timedOut(ctx, e.Code, detail):
		n.State = Timeout
		n.Detail = fmt.Sprintf("no answer within %s", limit.Round(time.Millisecond))
	case strings.Contains(detail, "can't find service Debug") || strings.Contains(detail, "can't find method Health"):
		n.State = NoHealth
		n.Detail = "the node runs but does not serve Debug.Health (a go-micro v4 service must register go-micro's debug handler; botmesh command services do)"
	case undelivered(err):
		n.State = Unreachable
		n.Detail = unreachable(detail)
	default:
		n.State = Failing
		n.Detail = clip(detail, 200)
	}
}

// RenderHealth renders the health of a service's nodes for chat: a summary
// line, then two lines per node.
func RenderHealth(service string, nodes []NodeHealth) string {
	healthy := 0
	for _, n := range nodes {
		if n.State == Healthy {
			healthy++
		}
	}
	var b strings.Builder
	switch {
	case len(nodes) == 1 && healthy == 1:
		fmt.Fprintf(&b, "%s: its node is healthy", service)
	case len(nodes) == 1:
		fmt.Fprintf(&b, "%s: its node is not healthy", service)
	case healthy == len(nodes):
		fmt.Fprintf(&b, "%s: all %d nodes are healthy", service, len(nodes))
	default:
		fmt.Fprintf(&b, "%s: %d of %d nodes are healthy", service, healthy, len(nodes))
	}
	for _, n := range nodes {
		fmt.Fprintf(&b, "\n• %s: %s (%s)", n.ID, n.State, latency(n.Latency))
		if n.Detail != "" && n.State != Healthy {
			fmt.Fprintf(&b, "\n  %s", n.Detail)
		}
		fmt.Fprintf(&b, "\n  address: %s", address(n))
	}
	return b.String()
}

// address says where a node is, as a user can use it: a NATS node's
// address is an inbox subject of no use outside NATS.
func address(n NodeHealth) string {
	switch {
	case n.Transport == "nats" || n.Transport == "" && strings.HasPrefix(n.Address, "_INBOX."):
		return "over NATS"
	case n.Transport != "":
		return n.Address + " (" + n.Transport + ")"
	default:
		return n.Address
	}
}

// latency rounds a duration for reading: 3 significant digits at most.
func latency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < 100*time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d < 10*time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}
