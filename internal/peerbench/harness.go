package peerbench

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
)

// harness lets the bench use the project's test helpers for Prosody and
// its users (gateway/adapter/adaptertest/prosodytest), which take a
// testing.TB, outside a test: a failure (Fatal, Fatalf) ends the helper
// call with a panic that catch turns into an error, Errorf records one,
// and Cleanup runs at close, the last registered first.
//
// testing.TB has an unexported method; embedding the interface (nil) is
// how a type outside package testing satisfies it. Every method the
// helpers call is defined here: one that is not would panic, and catch
// reports that panic as an error too.
type harness struct {
	testing.TB

	dir string // parent of TempDir's directories

	mu       sync.Mutex
	cleanups []func()
	errs     []error
	n        int
}

// fatal is the panic value of a failed helper call.
type fatal struct{ err error }

func newHarness(dir string) *harness { return &harness{dir: dir} }

func (h *harness) Helper() {}

func (h *harness) Name() string { return "peerbench" }

func (h *harness) Fatal(args ...any) { panic(fatal{errors.New(fmt.Sprint(args...))}) }

func (h *harness) Fatalf(format string, args ...any) {
	panic(fatal{fmt.Errorf(format, args...)})
}

func (h *harness) FailNow() { panic(fatal{errors.New("failed")}) }

func (h *harness) Error(args ...any) { h.record(errors.New(fmt.Sprint(args...))) }

func (h *harness) Errorf(format string, args ...any) { h.record(fmt.Errorf(format, args...)) }

func (h *harness) Log(...any) {}

func (h *harness) Logf(string, ...any) {}

func (h *harness) Failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.errs) > 0
}

func (h *harness) record(err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

func (h *harness) Cleanup(f func()) {
	h.mu.Lock()
	h.cleanups = append(h.cleanups, f)
	h.mu.Unlock()
}

// TempDir returns a new directory under the harness's; close removes it.
func (h *harness) TempDir() string {
	h.mu.Lock()
	h.n++
	n := h.n
	h.mu.Unlock()
	d := fmt.Sprintf("%s/tmp%d", h.dir, n)
	if err := os.MkdirAll(d, 0o755); err != nil {
		h.Fatalf("peerbench: %v", err)
	}
	h.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// catch runs f and returns the failure it ended with, if any.
func catch(f func()) (err error) {
	defer func() {
		switch p := recover().(type) {
		case nil:
		case fatal:
			err = p.err
		default:
			err = fmt.Errorf("peerbench: %v", p)
		}
	}()
	f()
	return nil
}

// close runs the cleanups, the last registered first, and returns the
// errors recorded.
func (h *harness) close() error {
	for {
		h.mu.Lock()
		if len(h.cleanups) == 0 {
			errs := h.errs
			h.errs = nil
			h.mu.Unlock()
			return errors.Join(errs...)
		}
		f := h.cleanups[len(h.cleanups)-1]
		h.cleanups = h.cleanups[:len(h.cleanups)-1]
		h.mu.Unlock()
		if err := catch(f); err != nil {
			h.record(err)
		}
	}
}
