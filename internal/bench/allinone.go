package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// runAllInOne starts the all-in-one binary with its shell input on pipes,
// as `printf 'ping\n…' | botmesh` would: it times the first pong from the
// process start, then (with cfg.Idle) leaves it at rest for cfg.Idle and
// measures it, then writes Burst pings at once and times their pongs.
func runAllInOne(ctx context.Context, cfg Config, dir string) (*AllInOne, *Idle, error) {
	logFile, err := os.Create(filepath.Join(dir, "botmesh.log"))
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+max(cfg.Idle, 0)+60*time.Second)
	defer cancel()
	// Its own data directory: a run never reads what earlier runs (or the
	// user's own botmesh) stored, nor leaves its audit records behind.
	args := []string{"--no_demo", "--data_dir", filepath.Join(dir, "botmesh-data")}
	var profileURL string
	if cfg.ProfileDir != "" {
		port, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		args = append(args, "--pprof_address", fmt.Sprintf("127.0.0.1:%d", port))
		profileURL = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, cfg.ProfileSeconds)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(cfg.Bin, "botmesh"), args...)
	cmd.Stderr = logFile
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	type line struct {
		at   time.Time
		text string
	}
	lines := make(chan line, cfg.Burst+16)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("bench: start botmesh: %w", err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- line{time.Now(), sc.Text()}
		}
		close(lines)
	}()
	// Pings written before the input reads are buffered by the pipe: the
	// first pong comes as soon as the mesh answers.
	if _, err := io.WriteString(stdin, "ping\n"); err != nil {
		return nil, nil, fmt.Errorf("bench: write to botmesh: %w", err)
	}
	var first time.Time
	select {
	case l, ok := <-lines:
		if !ok {
			return nil, nil, fmt.Errorf("bench: botmesh ended before answering; its log ends:\n%s", tail(logFile.Name(), 2000))
		}
		first = l.at
		if l.text != "pong" {
			return nil, nil, fmt.Errorf("bench: botmesh answered ping with %q", l.text)
		}
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("bench: no pong from botmesh: %w", ctx.Err())
	}
	a := &AllInOne{ReadyMillis: float64(first.Sub(start).Microseconds()) / 1e3, Burst: cfg.Burst}

	pid := cmd.Process.Pid
	var idle *Idle
	if cfg.Idle > 0 {
		m, err := measureIdle(ctx, map[string]int{IdleAllInOne: pid}, cfg.Idle)
		if err != nil {
			return nil, nil, err
		}
		idle = &m[0]
	}
	resetPeak(pid)
	cpu0, err := cpuOf(pid)
	if err != nil {
		return nil, nil, err
	}
	var profiled chan error
	if profileURL != "" {
		// The profile covers the start of the burst: make the burst
		// last longer than the profile to see only the burst.
		profiled = make(chan error, 1)
		go func() { profiled <- fetch(ctx, profileURL, filepath.Join(cfg.ProfileDir, "botmesh.pprof")) }()
		time.Sleep(50 * time.Millisecond)
	}
	burst := strings.Repeat("ping\n", cfg.Burst)
	sent := time.Now()
	go func() { _, _ = io.WriteString(stdin, burst) }()
	var last time.Time
	for i := range cfg.Burst {
		select {
		case l, ok := <-lines:
			if !ok {
				return nil, nil, fmt.Errorf("bench: botmesh ended after %d of %d pongs", i, cfg.Burst)
			}
			last = l.at
			if l.text != "pong" {
				a.Errors++
			}
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("bench: %d of %d pongs: %w", i, cfg.Burst, ctx.Err())
		}
	}
	cpu1, err := cpuOf(pid)
	if err != nil {
		return nil, nil, err
	}
	a.BurstMillis = float64(last.Sub(sent).Microseconds()) / 1e3
	a.PerSecond = float64(cfg.Burst) / last.Sub(sent).Seconds()
	a.CPUPerCommand = us(cpu1-cpu0) / float64(cfg.Burst)
	a.PeakRSS, _ = peakRSS(pid)
	if profiled != nil {
		if err := <-profiled; err != nil {
			return nil, nil, fmt.Errorf("bench: profile of botmesh: %w", err)
		}
	}
	return a, idle, nil
}
