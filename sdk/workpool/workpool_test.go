package workpool_test

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/workpool"
)

// waitGoroutines waits (up to 5 s) until at most n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after 5s, want at most %d", runtime.NumGoroutine(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Jobs run one after another reuse one worker; concurrent jobs each get
// one; Close makes the idle workers exit.
func TestPoolReusesAndReleasesWorkers(t *testing.T) {
	base := runtime.NumGoroutine()
	p := workpool.New(time.Minute)
	ids := map[string]bool{}
	for range 100 {
		done := make(chan string)
		p.Go(func() { done <- goroutineID() })
		ids[<-done] = true
		time.Sleep(time.Millisecond) // the worker goes back to waiting
	}
	// Without reuse every job would have had a goroutine of its own.
	if len(ids) > 50 {
		t.Errorf("100 jobs one after another ran on %d goroutines, want a few", len(ids))
	}
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 10 {
		wg.Add(1)
		p.Go(func() {
			defer wg.Done()
			<-release
		})
	}
	if n := runtime.NumGoroutine(); n < base+10 {
		t.Errorf("%d goroutines with 10 jobs blocked, want at least %d: a job waited for a worker", n, base+10)
	}
	close(release)
	wg.Wait()
	p.Close()
	waitGoroutines(t, base)
}

// A worker that gets no job for the idle time exits.
func TestPoolIdleWorkerExits(t *testing.T) {
	base := runtime.NumGoroutine()
	p := workpool.New(50 * time.Millisecond)
	defer p.Close()
	ran := make(chan struct{})
	p.Go(func() { close(ran) })
	<-ran
	waitGoroutines(t, base)
	// Jobs still run after every worker left, and after Close.
	again := make(chan struct{})
	p.Go(func() { close(again) })
	select {
	case <-again:
	case <-time.After(5 * time.Second):
		t.Fatal("a job after the workers exited never ran")
	}
	p.Close()
	closed := make(chan struct{})
	p.Go(func() { close(closed) })
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("a job after Close never ran")
	}
	waitGoroutines(t, base)
}

// goroutineID returns the id of the calling goroutine, from its stack's
// first line ("goroutine 42 [running]:").
func goroutineID() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return string(b)
	}
	return f[1]
}
