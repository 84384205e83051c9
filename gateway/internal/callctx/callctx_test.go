package callctx

import (
	"context"
	"testing"
	"time"
)

// A call's context ends with the caller's while the call runs, and not when
// the caller's ends after the call returned (mellium would then cut the
// session's next read or write).
func TestFor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cctx, done := For(ctx)
	done()
	cancel()
	time.Sleep(10 * time.Millisecond)
	if err := cctx.Err(); err != nil {
		t.Errorf("the call's context ended after the call returned: %v", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	cctx, done = For(ctx)
	defer done()
	select {
	case <-cctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the call's context did not end with its caller's deadline")
	}
}
