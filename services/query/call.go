package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/suggest"
	registrycmd "github.com/botmesh/botmesh/services/registry-cmd"
	"go-micro.dev/v4/client"
	mbytes "go-micro.dev/v4/codec/bytes"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
)

// MethodNotFoundError says a service has no such method.
type MethodNotFoundError struct {
	Service, Method string
	// Known are the methods the service lists, if it lists any.
	Known []string
}

func (e *MethodNotFoundError) Error() string {
	s := fmt.Sprintf("%s has no method %q.", e.Service, clip(e.Method, 80))
	if len(e.Known) == 0 {
		return s
	}
	if sug := suggest.Closest(e.Method, e.Known); len(sug) > 0 {
		s += " Did you mean " + suggest.Quote(sug) + "?"
	}
	known := e.Known
	if len(known) > 20 {
		known = append(known[:20:20], fmt.Sprintf("… %d more (get service %s lists them all)", len(e.Known)-20, e.Service))
	}
	return s + " Its methods: " + strings.Join(known, ", ")
}

// query runs `query SERVICE METHOD [JSON]`.
func (h *Handler) query(ctx context.Context, log *slog.Logger, text string) (string, error) {
	c, err := ParseCall(text)
	if err != nil {
		return "", err
	}
	if h.commandService(c.Service) {
		return "", &UsageError{Msg: fmt.Sprintf("query does not call command services such as %s: run the command itself, where the policy and its confirmations apply; type help for the commands and their usage.", clip(c.Service, 80))}
	}
	svcs, err := registrycmd.Lookup(ctx, h.reg, c.Service)
	if err != nil {
		return "", err
	}
	if known := endpoints(svcs); len(known) > 0 && !contains(known, c.Method) {
		return "", &MethodNotFoundError{Service: c.Service, Method: c.Method, Known: known}
	}

	cctx, cancel, limit := deadline(ctx, h.timeout)
	defer cancel()
	req := h.cl.NewRequest(c.Service, c.Method, &mbytes.Frame{Data: c.Body}, client.WithContentType("application/json"))
	rsp := &mbytes.Frame{}
	started := time.Now()
	err = h.cl.Call(cctx, req, rsp,
		client.WithRetries(1),
		client.WithRetry(retryUndelivered),
		client.WithCallWrapper(connectionTimeout),
		client.WithRequestTimeout(limit))
	took := time.Since(started)
	log.Debug("query", "service", c.Service, "method", c.Method, "request_bytes", len(c.Body), "response_bytes", len(rsp.Data), "took", took, "err", err)
	if err != nil {
		return "", callError(cctx, c, limit, err)
	}
	return render(rsp.Data), nil
}

// commandService reports whether service is one of the command services
// (namespace.NAME), compared ignoring case.
func (h *Handler) commandService(service string) bool {
	ns := strings.ToLower(h.namespace) + "."
	return len(service) > len(ns) && strings.HasPrefix(strings.ToLower(service), ns)
}

// render indents a JSON response; anything else is shown as it came.
func render(data []byte) string {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "(empty response)"
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		return string(bytes.ToValidUTF8(data, []byte("\uFFFD")))
	}
	if s := out.String(); s != "{}" {
		return s
	}
	return "{} (an empty response: every field has its default value)"
}

// timedOut reports whether a call failed for want of time: the client gave
// up (408, or the context ended), or the service's handler ran out of the
// deadline the call gave it and said so (its error can arrive a moment
// before the client's own deadline passes).
func timedOut(ctx context.Context, code int32, detail string) bool {
	return code == 408 || ctx.Err() != nil || detail == context.DeadlineExceeded.Error()
}

// callError words a failed call for the user.
func callError(ctx context.Context, c Call, limit time.Duration, err error) error {
	e := merrors.Parse(err.Error())
	detail := e.Detail
	if detail == "" {
		detail = err.Error()
	}
	var wrongTransport *mesh.TransportError
	switch {
	case errors.As(err, &wrongTransport):
		return wrongTransport
	case timedOut(ctx, e.Code, detail):
		return fmt.Errorf("no answer from %s (%s) within %s", c.Service, c.Method, limit.Round(time.Millisecond))
	case strings.Contains(detail, "can't find method") || strings.Contains(detail, "can't find service"):
		// go-micro's server: "rpc: can't find service Greeter" (the
		// handler part) or "rpc: can't find method Hell".
		return &MethodNotFoundError{Service: c.Service, Method: c.Method}
	case e.Id == "go.micro.client" && (strings.Contains(detail, "not found") || strings.Contains(detail, "none available")):
		return fmt.Errorf("no instance of %s is running right now", c.Service)
	case undelivered(err):
		return fmt.Errorf("could not reach %s: %s", c.Service, unreachable(detail))
	case e.Code == 0 && decodeError(detail):
		// go-micro's server could not decode the JSON into the method's
		// request type; it answers with the codec's bare message.
		return fmt.Errorf("%s could not read the request as %s's request type: %s (get service %s shows its fields)", c.Service, c.Method, detail, c.Service)
	case e.Code == 400:
		return fmt.Errorf("%s refused the request (bad request): %s", c.Service, detail)
	case e.Code > 0:
		return fmt.Errorf("%s answered with an error (%d %s): %s", c.Service, e.Code, e.Status, detail)
	default:
		return fmt.Errorf("%s answered with an error: %s", c.Service, detail)
	}
}

// decodeError reports whether a bare error message (no go-micro error code)
// comes from decoding the request.
func decodeError(detail string) bool {
	for _, s := range []string{"json: ", "unknown field", "cannot unmarshal", "proto:", "invalid value for", "syntax error"} {
		if strings.Contains(detail, s) {
			return true
		}
	}
	return false
}

// endpoints returns the methods the service's registrations list.
func endpoints(svcs []*registry.Service) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range svcs {
		for _, e := range s.Endpoints {
			if e != nil && e.Name != "" && !seen[e.Name] {
				seen[e.Name] = true
				out = append(out, e.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
