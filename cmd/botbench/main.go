// Command botbench measures botmesh as deployed: it starts nats-server, the
// router(s) and the echo command service as separate processes, plays the
// gateway with synthetic users, and reports commands per second, latency
// percentiles, CPU per command and peak memory of every process, beside
// the same figures for raw NATS request-reply, raw go-micro calls and the
// composite floor they make (one go-micro call + two NATS request-replies),
// and for the mesh the seed's way (go-micro's http transport). It measures
// each part at rest (memory, CPU per second), times the all-in-one (ready,
// and a burst of pings) and how soon a new command service is usable.
//
//	botbench --count 20000 --concurrency 64
//	botbench --json > bench.json
//	botbench --check bench.json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/botmesh/botmesh/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "botbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("botbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := bench.DefaultConfig()
	fs.StringVar(&cfg.Bin, "bin", "", "directory with the binaries nats-server, router, gateway, echo, query and botmesh (default: go build them; run inside the botmesh tree)")
	fs.IntVar(&cfg.Count, "count", cfg.Count, "commands of each measured run")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "longest time of each measured run")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "commands awaiting their reply at once")
	fs.IntVar(&cfg.SingleCount, "single_count", cfg.SingleCount, "commands of the single-flight runs (concurrency 1; negative: none)")
	fs.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured commands before each run")
	fs.StringVar(&cfg.Command, "command", cfg.Command, "message the synthetic users send")
	fs.StringVar(&cfg.Delivery, "delivery", cfg.Delivery, "jetstream or core")
	fs.IntVar(&cfg.Routers, "routers", cfg.Routers, "router processes")
	fs.StringVar(&cfg.Transport, "transport", cfg.Transport, "go-micro transport of the routers and services")
	fs.BoolVar(&cfg.Dedup, "dedup", cfg.Dedup, "keep the gateway's de-duplication of event ids on, as deployed")
	fs.BoolVar(&cfg.Baselines, "baselines", cfg.Baselines, "measure raw NATS request-reply and raw go-micro calls too")
	fs.IntVar(&cfg.Burst, "burst", cfg.Burst, "pings sent at once to the all-in-one (0: skip it)")
	fs.BoolVar(&cfg.Discovery, "discovery", cfg.Discovery, "time how soon a newly started command service is usable")
	fs.BoolVar(&cfg.Seed, "seed", cfg.Seed, "measure the mesh the seed's way too: the router calling echo over go-micro's http transport (run mesh-http)")
	fs.DurationVar(&cfg.Idle, "idle", cfg.Idle, "time every part (nats-server, router, echo, a gateway process, the all-in-one) is left at rest to measure its memory and CPU (negative: skip)")
	fs.StringVar(&cfg.ProfileDir, "profile", "", "directory for CPU profiles of every process during the main mesh run")
	fs.IntVar(&cfg.ProfileSeconds, "profile_seconds", cfg.ProfileSeconds, "length of the CPU profiles")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "log progress to stderr")
	timeout := fs.Duration("timeout", 15*time.Minute, "longest time of the whole bench")
	show := fs.String("show", "", "print the report saved (with --json) in this file as text, and exit")
	check := fs.String("check", "", "check that the report saved (with --json) in this file holds every figure its setup asked for (the floors, their ratios, the seed's run, the parts at rest), and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: botbench [flags]\n\nMeasures botmesh as deployed (separate processes) beside raw NATS and raw go-micro.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *show != "" {
		rep, err := bench.ReadReport(*show)
		if err != nil {
			return err
		}
		return rep.WriteText(stdout)
	}
	if *check != "" {
		rep, err := bench.ReadReport(*check)
		if err != nil {
			return err
		}
		if err := rep.Check(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: complete\n", *check)
		return nil
	}
	if *verbose {
		cfg.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if n := rep.Failed(); n > 0 {
		// The figures stand, but a mesh that fails commands is not fast.
		return fmt.Errorf("%d commands failed or got an unexpected reply (see the report)", n)
	}
	return nil
}
