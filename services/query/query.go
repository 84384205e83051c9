// Package query serves the micro CLI's service calls through chat, from one
// command service: `query SERVICE METHOD [JSON]` calls any go-micro service
// with a JSON request, without its generated code, and prints the response
// as indented JSON; `health SERVICE` asks every node of a service for
// go-micro's Debug.Health, directly, and reports each node's state and
// latency.
package query

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/mesh"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
)

// Name is the command service's name (registry name <namespace>.query).
const Name = "query"

// The command patterns the service serves.
const (
	CmdQuery  = "query"
	CmdHealth = "health"
)

// Defaults of the options.
const (
	// DefaultTimeout bounds one query call; keep it under the router's
	// --timeout (30s) so the user gets this service's explanation.
	DefaultTimeout = 10 * time.Second
	// DefaultHealthTimeout bounds the health check of one node.
	DefaultHealthTimeout = 3 * time.Second
	// DefaultMaxBytes is the longest answer; longer ones are cut with a
	// note saying how much.
	DefaultMaxBytes = 16 << 10
)

// Handler serves query and health. Build it with New.
type Handler struct {
	reg           registry.Registry
	cl            client.Client
	log           *slog.Logger
	timeout       time.Duration
	healthTimeout time.Duration
	maxBytes      int
	namespace     string
}

var _ chatopsv1.CommandHandler = (*Handler)(nil)

// Option configures New.
type Option func(*Handler)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithTimeout bounds one query call (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(h *Handler) { h.timeout = d } }

// WithHealthTimeout bounds the health check of one node (default
// DefaultHealthTimeout).
func WithHealthTimeout(d time.Duration) Option { return func(h *Handler) { h.healthTimeout = d } }

// WithMaxBytes sets the longest answer (default DefaultMaxBytes).
func WithMaxBytes(n int) Option { return func(h *Handler) { h.maxBytes = n } }

// WithNamespace sets the namespace of the command services (default
// mesh.DefaultNamespace; pass the mesh's Namespace()). query refuses to
// call the services in it: their commands are run as commands, where the
// policy and confirmations apply to them.
func WithNamespace(ns string) Option { return func(h *Handler) { h.namespace = ns } }

// New returns a handler that finds services in reg and calls them with cl
// (a client on the same registry and transport, e.g. the mesh's
// NewClient).
func New(reg registry.Registry, cl client.Client, opts ...Option) *Handler {
	h := &Handler{reg: reg, cl: cl, log: slog.New(slog.DiscardHandler), timeout: DefaultTimeout, healthTimeout: DefaultHealthTimeout, maxBytes: DefaultMaxBytes, namespace: mesh.DefaultNamespace}
	for _, o := range opts {
		o(h)
	}
	if h.timeout <= 0 {
		h.timeout = DefaultTimeout
	}
	if h.healthTimeout <= 0 {
		h.healthTimeout = DefaultHealthTimeout
	}
	if h.maxBytes <= 0 {
		h.maxBytes = DefaultMaxBytes
	}
	if h.namespace == "" {
		h.namespace = mesh.DefaultNamespace
	}
	return h
}

// Help lists the two commands, in the Micro Bot's form ([service]
// placeholders); a description's second line, an example, is shown by
// "help COMMAND".
func (h *Handler) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	rsp.Usage = Usage + " | health [service]"
	rsp.Description = "Calls a go-micro service with JSON; checks its nodes' health"
	rsp.Commands = []*chatopsv1.CommandSpec{
		{Pattern: CmdQuery, Usage: Usage, Description: "Calls [method] (e.g. Greeter.Hello) of [service] with [json] as the request\nExample: query greeter Greeter.Hello {\"name\":\"Ada\"}"},
		{Pattern: CmdHealth, Usage: "health [service]", Description: "Asks every node of [service] for its health, with latency\nExample: health greeter"},
	}
	return nil
}

// Exec runs one command. Every failure is an answer in rsp.Error, worded
// for the user.
func (h *Handler) Exec(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	cmd := strings.ToLower(req.GetCommand())
	if cmd == "" && len(req.GetArgs()) > 0 {
		cmd = strings.ToLower(req.GetArgs()[0])
	}
	text := req.GetText()
	if text == "" {
		text = strings.Join(req.GetArgs(), " ")
	}
	log := h.log.With("command", cmd, "caller", req.GetCaller().GetId())
	var (
		out string
		err error
	)
	switch cmd {
	case CmdQuery:
		out, err = h.query(ctx, log, text)
	case CmdHealth:
		out, err = h.health(ctx, req.GetArgs())
	default:
		err = fmt.Errorf("this service serves %s and %s, not %q", CmdQuery, CmdHealth, clip(cmd, 60))
	}
	if err != nil {
		if errUsage(err) {
			log.Debug("refused", "err", err)
		} else {
			log.Info("failed", "err", err)
		}
		rsp.Error = err.Error()
		return nil
	}
	rsp.Result = command.Cut([]byte(out), h.maxBytes)
	return nil
}

// deadline returns a context for one call: at most d, and ending a little
// before ctx does, so that this service can still answer the router.
func deadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc, time.Duration) {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) - 250*time.Millisecond; left < d {
			d = max(left, 10*time.Millisecond)
		}
	}
	c, cancel := context.WithTimeout(ctx, d)
	return c, cancel, d
}

// connectionTimeout gives each attempt the time left before the call's
// deadline; go-micro's default (5s) would otherwise cut a slower call and
// retry it.
func connectionTimeout(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		if dl, ok := ctx.Deadline(); ok {
			opts.ConnectionTimeout = time.Until(dl)
		}
		return next(ctx, node, req, rsp, opts)
	}
}

// retryUndelivered retries only a call that cannot have reached a handler
// (no responders on a NATS node that just registered, a refused
// connection): a query must not run twice because it was slow.
func retryUndelivered(ctx context.Context, _ client.Request, _ int, err error) (bool, error) {
	return err != nil && ctx.Err() == nil && undelivered(err), nil
}

// unreachable words an undelivered call's detail for the user.
func unreachable(detail string) string {
	switch d := strings.ToLower(detail); {
	case strings.Contains(d, "no responders"):
		return "nothing answers at its address (NATS: no responders); its process is probably gone"
	case strings.Contains(d, "connection refused"):
		return "nothing listens at its address (connection refused); its process is probably gone"
	}
	return clip(detail, 200)
}

func undelivered(err error) bool {
	d := strings.ToLower(err.Error())
	return strings.Contains(d, "no responders") || strings.Contains(d, "connection error") || strings.Contains(d, "connection refused")
}
