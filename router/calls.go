package router

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
)

// connectionTimeout sets the per-attempt timeout of the go-micro client,
// which has no option for it and defaults to 5 s: an attempt must be allowed
// the whole command timeout, or a slow command would be retried (and run
// twice).
func connectionTimeout(d time.Duration) client.Option {
	return func(o *client.Options) { o.CallOptions.ConnectionTimeout = d }
}

// markUnreachable gives each attempt the time left before the deadline and,
// when an attempt fails without reaching the service's handler, tells the
// directory to skip that node for a while.
func (r *Router) markUnreachable(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		if dl, ok := ctx.Deadline(); ok {
			opts.ConnectionTimeout = time.Until(dl)
		}
		err := next(ctx, node, req, rsp, opts)
		if err != nil && undelivered(err) {
			r.dir.MarkDown(req.Service(), node.Id)
		}
		return err
	}
}

// retryUndelivered retries a call only when the request cannot have reached
// a handler (no node, node gone): a command must never run twice because its
// answer was slow.
func retryUndelivered(ctx context.Context, _ client.Request, _ int, err error) (bool, error) {
	return err != nil && ctx.Err() == nil && undelivered(err), nil
}

// undelivered reports whether err says the request never reached a handler.
// With the NATS transport a node that is gone makes the NATS server answer
// "no responders" (go.micro.client.transport); a failed dial is a
// "connection error" (go.micro.client).
func undelivered(err error) bool {
	e := merrors.Parse(err.Error())
	if e.Id != "" && !strings.HasPrefix(e.Id, "go.micro.client") {
		return false // from the server side: the handler ran or refused
	}
	d := strings.ToLower(e.Detail)
	if e.Detail == "" {
		d = strings.ToLower(err.Error())
	}
	for _, s := range []string{"connection error", "no responders", "none available"} {
		if strings.Contains(d, s) {
			return true
		}
	}
	return false
}

// isTimeout reports whether err says the call ran out of time: go-micro's
// 408, or the service's handler giving up at the deadline the call gave it
// (its error can arrive a moment before the router's own deadline passes).
func isTimeout(err error) bool {
	e := merrors.Parse(err.Error())
	return e.Code == 408 || detail(e, err) == context.DeadlineExceeded.Error()
}

// callError words a failed Command.Exec call for the user; timedOut says
// the call ran out of time.
func callError(command, service string, timeout time.Duration, err error, timedOut bool) string {
	e := merrors.Parse(err.Error())
	switch {
	case timedOut:
		return fmt.Sprintf("%s: no answer from %s within %s", command, service, timeout)
	case e.Id == "go.micro.client" && (strings.Contains(e.Detail, "not found") || strings.Contains(e.Detail, "none available")):
		return fmt.Sprintf("%s: no instance of %s is running right now", command, service)
	case undelivered(err):
		return fmt.Sprintf("%s: could not reach %s (%s)", command, service, detail(e, err))
	default:
		return fmt.Sprintf("%s: %s failed: %s", command, service, detail(e, err))
	}
}

func detail(e *merrors.Error, err error) string {
	if e.Detail != "" {
		return e.Detail
	}
	return err.Error()
}
