package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"
)

// Idle is one part of the mesh at rest: started, one command answered,
// then nothing to do for a while.
type Idle struct {
	// Process names the part: nats-server, router, echo, gateway or
	// botmesh (the all-in-one).
	Process string `json:"process"`
	// RSS is its resident memory at the end of the window (VmRSS), KiB.
	RSS int64 `json:"rss_kib"`
	// RSSAnon is the anonymous part of RSS (RssAnon: heap, stacks, the
	// runtime's own), KiB. The rest is mostly the binary's pages mapped
	// from its file: shared by every process of the same binary, and the
	// first the kernel drops when memory runs short.
	RSSAnon int64 `json:"rss_anon_kib"`
	// CPUMillisPerSecond is the CPU time it used in the window (user and
	// system, all threads) divided by the window's length.
	CPUMillisPerSecond float64 `json:"cpu_ms_per_second"`
	// Seconds is the window's length.
	Seconds float64 `json:"seconds"`
}

// Names of the parts at rest.
const (
	IdleNATS     = "nats-server"
	IdleRouter   = "router"
	IdleEcho     = "echo"
	IdleGateway  = "gateway"
	IdleAllInOne = "botmesh (all-in-one)"
)

// TargetGatewayIdleMiB is issue 17's target for a gateway's idle RSS.
const TargetGatewayIdleMiB = 20

// measureIdle reads the CPU time of each process (by name) at the start
// and the end of a window of length d in which the bench sends nothing,
// and their resident memory at its end.
func measureIdle(ctx context.Context, pids map[string]int, d time.Duration) ([]Idle, error) {
	names := sortedKeys(pids)
	before := map[string]usage{}
	for _, n := range names {
		u, err := preciseCPU(pids[n])
		if err != nil {
			return nil, fmt.Errorf("bench: cpu of %s: %w", n, err)
		}
		before[n] = u
	}
	start := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	took := time.Since(start)
	out := make([]Idle, 0, len(names))
	for _, n := range names {
		u, err := preciseCPU(pids[n])
		if err != nil {
			return nil, fmt.Errorf("bench: cpu of %s: %w", n, err)
		}
		kib, err := rss(pids[n])
		if err != nil {
			return nil, fmt.Errorf("bench: memory of %s: %w", n, err)
		}
		anon, err := statusKiB(pids[n], "RssAnon")
		if err != nil {
			return nil, fmt.Errorf("bench: memory of %s: %w", n, err)
		}
		out = append(out, Idle{
			Process:            n,
			RSS:                kib,
			RSSAnon:            anon,
			CPUMillisPerSecond: float64(u-before[n]) / 1e6 / took.Seconds(),
			Seconds:            took.Seconds(),
		})
	}
	return out, nil
}

// startGateway starts a real gateway process (bin/gateway with the shell
// input on a pipe, as a deployment with no platform account would run it)
// and waits until it answers ping: the gateway measured at rest, since
// the bench's own gateway shares its process with the load.
func (b *bencher) startGateway(ctx context.Context) (*proc, error) {
	p, stdin, stdout, err := b.ps.startPiped(IdleGateway, "gateway", "--inputs", "shell", "--nats_url", b.url)
	if err != nil {
		return nil, err
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads any more: drop
			}
		}
	}()
	if _, err := io.WriteString(stdin, "ping\n"); err != nil {
		b.ps.remove(p)
		return nil, fmt.Errorf("bench: write to the gateway: %w", err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				b.ps.remove(p)
				return nil, fmt.Errorf("bench: the gateway ended before answering ping; its log ends:\n%s", tail(p.log, 2000))
			}
			if l == "pong" {
				return p, nil
			}
		case <-timeout:
			b.ps.remove(p)
			return nil, fmt.Errorf("bench: the gateway did not answer ping within 30s; its log ends:\n%s", tail(p.log, 2000))
		case <-ctx.Done():
			b.ps.remove(p)
			return nil, ctx.Err()
		}
	}
}

// idle measures every part of the mesh at rest, the real gateway included,
// and stops that gateway.
func (b *bencher) idle(ctx context.Context) ([]Idle, error) {
	b.log.Info("idle", "seconds", b.cfg.Idle.Seconds())
	gw, err := b.startGateway(ctx)
	if err != nil {
		return nil, err
	}
	defer b.ps.remove(gw)
	pids := map[string]int{IdleGateway: gw.cmd.Process.Pid}
	for name, pid := range b.pids {
		if pid != 0 { // not the bench itself
			pids[name] = pid
		}
	}
	return measureIdle(ctx, pids, b.cfg.Idle)
}
