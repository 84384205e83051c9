package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/botmesh/botmesh/sdk/mesh"
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

// Undelivered calls are tried again after a backoff that starts at
// retryFirst and doubles up to retryMax: for retryQuick whatever happens
// (a node that registered a moment ago may not have its NATS subscription
// yet), and then until the deadline if the directory says the service is
// worth it (its nodes answered before, or NATS is settling after an
// outage). retryMargin is left before the deadline, so that the caller gets
// the undelivered error, not a timeout.
const (
	retryFirst  = 100 * time.Millisecond
	retryMax    = time.Second
	retryQuick  = time.Second
	retryMargin = 50 * time.Millisecond
)

// markUnreachable gives each attempt the time left before the deadline;
// when an attempt fails without reaching the service's handler, it tells
// the directory to skip that node for a while and tries again, on another
// node if there is one, with a backoff, for as long as it is worth it (see
// retryQuick). Only undelivered calls are tried again: a command must
// never run twice. It returns an *unreachableError when it gives up.
func (r *Router) markUnreachable(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		service := req.Service()
		start := time.Now()
		wait := retryFirst
		for {
			if dl, ok := ctx.Deadline(); ok {
				opts.ConnectionTimeout = time.Until(dl)
			}
			err := next(ctx, node, req, rsp, opts)
			var wrongTransport *mesh.TransportError
			if errors.As(err, &wrongTransport) {
				return err // never sent: nothing to mark, no node to retry
			}
			if err == nil || !undelivered(err) {
				if err == nil || merrors.Parse(err.Error()).Id != "go.micro.client" {
					r.dir.MarkUp(service, node.Id) // delivered
				}
				return err
			}
			r.dir.MarkDown(service, node.Id)
			gaveUp := &unreachableError{err: err, took: time.Since(start)}
			if !r.worthRetrying(ctx, service, start, wait) {
				return gaveUp
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return gaveUp
			case <-t.C:
			}
			wait = min(2*wait, retryMax)
			// The view may have changed meanwhile: the service left (the
			// call cannot succeed) or has another node to try.
			nodes, err := r.dir.Selector().Select(service, opts.SelectOptions...)
			if err != nil {
				return gaveUp
			}
			if n, err := nodes(); err == nil {
				node = n
			}
		}
	}
}

// worthRetrying reports whether an undelivered call begun at start should
// be tried again after wait.
func (r *Router) worthRetrying(ctx context.Context, service string, start time.Time, wait time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+retryMargin {
		return false
	}
	return time.Since(start)+wait <= retryQuick || r.dir.WorthRetrying(service)
}

// unreachableError is the last error of a call that was never delivered,
// though tried for took.
type unreachableError struct {
	err  error
	took time.Duration
}

// Error returns the last attempt's error text (for the audit record).
func (e *unreachableError) Error() string { return e.err.Error() }

func (e *unreachableError) Unwrap() error { return e.err }

// retryUndelivered retries a call only when the request cannot have reached
// a handler (no node, node gone): a command must never run twice because its
// answer was slow. Calls that markUnreachable gave up on have been tried
// again already.
func retryUndelivered(ctx context.Context, _ client.Request, _ int, err error) (bool, error) {
	var gaveUp *unreachableError
	if errors.As(err, &gaveUp) {
		return false, nil
	}
	return err != nil && ctx.Err() == nil && undelivered(err), nil
}

// undelivered reports whether err says the request never reached a handler.
// With the NATS transport a node that is gone makes the NATS server answer
// "no responders" (go.micro.client.transport); a failed dial is a
// "connection error" (go.micro.client); with the http transport, writing
// the request on a pooled connection whose server is gone fails with a
// broken pipe or a reset (go.micro.client.transport): go-micro's server
// reads the whole request before it runs a handler.
func undelivered(err error) bool {
	e := merrors.Parse(err.Error())
	if e.Id != "" && !strings.HasPrefix(e.Id, "go.micro.client") {
		return false // from the server side: the handler ran or refused
	}
	d := strings.ToLower(e.Detail)
	if e.Detail == "" {
		d = strings.ToLower(err.Error())
	}
	for _, s := range []string{"connection error", "no responders", "none available", "write: broken pipe", "write: connection reset"} {
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
	var gaveUp *unreachableError
	var wrongTransport *mesh.TransportError
	switch {
	case errors.As(err, &wrongTransport):
		return fmt.Sprintf("%s: %s", command, wrongTransport.Error())
	case errors.As(err, &gaveUp):
		// Every attempt failed before reaching a handler, even if the
		// deadline has passed since.
		within := max(gaveUp.took.Round(100*time.Millisecond), 100*time.Millisecond)
		if gaveUp.took >= timeout-time.Second {
			within = timeout
		}
		return fmt.Sprintf("%s: could not reach %s: none of its instances answered within %s (they may be restarting); try again shortly", command, service, within)
	case timedOut:
		return fmt.Sprintf("%s: no answer from %s within %s", command, service, timeout)
	case e.Id == "go.micro.client" && (strings.Contains(e.Detail, "not found") || strings.Contains(e.Detail, "none available")):
		return fmt.Sprintf("%s: no instance of %s is running right now", command, service)
	case undelivered(err):
		// The detail is the transport's ("nats: no responders available
		// for request"): the audit record has it, the user gets its sense.
		return fmt.Sprintf("%s: could not reach %s: none of its instances answered (they may be restarting); try again shortly", command, service)
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
