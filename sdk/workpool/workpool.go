// Package workpool runs jobs on goroutines that are kept for a while after
// their job ends, for the next one. A job started on a new goroutine grows
// its stack (and copies it) several times on its way through a command:
// that was a tenth of the router's CPU when each message had a new
// goroutine, and a seventh of a command service's under go-micro's server.
package workpool

import (
	"sync"
	"time"
)

// Pool hands jobs to idle workers, starting a worker when none is idle. A
// worker that gets no job for the pool's idle time exits, so an idle
// process keeps no worker and no timer.
type Pool struct {
	idle      time.Duration
	jobs      chan func()
	done      chan struct{}
	closeOnce sync.Once
}

// New returns a Pool whose workers wait idle for a job before they exit.
func New(idle time.Duration) *Pool {
	return &Pool{idle: idle, jobs: make(chan func()), done: make(chan struct{})}
}

// Go runs job on an idle worker, or on a new one: it never waits.
func (p *Pool) Go(job func()) {
	select {
	case p.jobs <- job:
	default:
		go p.work(job)
	}
}

// Close makes idle workers exit now; running jobs finish, and workers exit
// after them. Go still runs jobs after Close, each on a new goroutine that
// exits after it.
func (p *Pool) Close() { p.closeOnce.Do(func() { close(p.done) }) }

// work runs job, then the jobs it is handed, until none comes for the idle
// time or the pool is closed.
func (p *Pool) work(job func()) {
	job()
	idle := time.NewTimer(p.idle)
	defer idle.Stop()
	for {
		select {
		case job := <-p.jobs:
			job()
			idle.Reset(p.idle)
		case <-idle.C:
			return
		case <-p.done:
			return
		}
	}
}
