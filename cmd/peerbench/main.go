// Command peerbench measures botmesh beside a real peer, Errbot, through
// one Prosody it starts itself: the same ten XMPP users send the same
// commands to both bots, one at a time, all at once, and with one user's
// slow command in the mix; it reports latency, throughput, the bots' CPU
// per command and while idle, and their peak memory, with the ratios
// botmesh ÷ Errbot. Errbot runs if Debian's errbot and python3-slixmpp are
// installed; without them botmesh alone is measured.
//
//	make build && peerbench --bin bin --rounds 3
//	peerbench --bin bin --json > peer.json
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

	"github.com/botmesh/botmesh/internal/peerbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("peerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := peerbench.DefaultConfig()
	fs.StringVar(&cfg.Bin, "bin", "bin", "directory with the botmesh binary (make build)")
	fs.StringVar(&cfg.Python, "python", cfg.Python, "the Python that runs Errbot (Debian's, which sees the errbot and python3-slixmpp packages)")
	fs.BoolVar(&cfg.NoErrbot, "no_errbot", false, "measure botmesh alone")
	fs.BoolVar(&cfg.ErrbotAsync, "errbot_async", false, "run Errbot with BOT_ASYNC = True (its default; over XMPP a reply then waits for the next incoming stanza)")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "XMPP users, each in a 1:1 chat with the bot")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds: both bots in each, the order reversed every other round; the report gives medians")
	fs.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured commands per user before the phases")
	fs.IntVar(&cfg.Single, "single", cfg.Single, "commands of the one-at-a-time phase")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of each phase with every user in flight (longer than --slow)")
	fs.DurationVar(&cfg.Slow, "slow", cfg.Slow, "how long the slow command takes")
	fs.DurationVar(&cfg.Idle, "idle", cfg.Idle, "how long idle CPU is measured")
	fs.DurationVar(&cfg.ReplyTimeout, "reply_timeout", cfg.ReplyTimeout, "longest wait for a reply")
	fs.DurationVar(&cfg.StartTimeout, "start_timeout", cfg.StartTimeout, "longest wait for a bot's first reply")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "log progress to stderr")
	timeout := fs.Duration("timeout", 30*time.Minute, "longest time of the whole bench")
	show := fs.String("show", "", "print the report saved (with --json) in this file as text, and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: peerbench [flags]\n\nMeasures botmesh and Errbot side by side through one Prosody.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("peerbench: unexpected arguments %q", fs.Args())
	}
	if *show != "" {
		rep, err := peerbench.ReadReport(*show)
		if err != nil {
			return err
		}
		return rep.WriteText(stdout)
	}
	if *verbose {
		cfg.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := peerbench.Run(ctx, cfg)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("peerbench: not done within --timeout %s", *timeout)
	case errors.Is(err, context.Canceled):
		return errors.New("peerbench: stopped")
	case err != nil:
		return err
	}
	if *asJSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}
