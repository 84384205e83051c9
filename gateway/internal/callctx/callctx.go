// Package callctx works around how mellium (mellium.im/xmpp v0.23.0) uses
// the context of a call. mellium watches a call's context from a goroutine
// that, once the context ends, sets the connection's deadline to the past
// and back; that goroutine may run after the call returned, so a context
// cancelled right after a call can cut the session's next read or write
// (seen as "i/o timeout" and a corrupt TLS record, "bad record mac").
package callctx

import "context"

// For returns the context to give one mellium call, and the func to call
// when the call returned. The returned context ends when ctx does while the
// call runs; done lets go of it without ending it.
func For(ctx context.Context) (cctx context.Context, done func()) {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	return cctx, func() { stop() }
}
