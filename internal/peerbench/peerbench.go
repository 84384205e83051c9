// Package peerbench measures botmesh beside a real peer, Errbot, through
// one real XMPP server: it starts its own Prosody, logs in ten users with
// real XMPP clients, runs each bot in turn as the users' contact, and
// times the same commands against both (echo TOKEN; slow TOKEN, answered
// after a pause). It measures, per bot:
//
//   - one command at a time: latency percentiles and the bot process's
//     CPU per command;
//   - every user with a command in flight: commands per second and CPU
//     per command;
//   - the same with one user running the slow command in a loop: the
//     others' commands per second (a bot that runs commands one after the
//     other holds everyone up);
//   - CPU while idle, and peak resident memory.
//
// Both bots run in every round, in the reverse order in the next round;
// the report gives the medians over the rounds and the ratios botmesh ÷
// Errbot. Without Errbot (Debian's errbot and python3-slixmpp) botmesh
// alone is measured, and the report says why.
package peerbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/prosodytest"
	"github.com/botmesh/botmesh/internal/bench"
)

var discard = slog.New(slog.DiscardHandler)

// Config says what to run and how long.
type Config struct {
	// Bin is the directory with the botmesh binary (make build).
	Bin string
	// Python runs Errbot (`Python -m errbot.cli`): Debian's python3, which
	// sees Debian's errbot and slixmpp packages.
	Python string
	// NoErrbot measures botmesh alone.
	NoErrbot bool
	// ErrbotAsync runs Errbot with BOT_ASYNC = True, its default, which
	// over XMPP holds a reply until the next stanza comes in (errbot#1598,
	// #1516): off by default.
	ErrbotAsync bool
	// Users is how many users talk to the bot, each in a 1:1 chat.
	Users int
	// Rounds is how many times both bots run, in alternating order.
	Rounds int
	// Warmup is how many unmeasured commands each user sends first.
	Warmup int
	// Single is how many commands the one-at-a-time phase sends.
	Single int
	// Duration is the length of each phase with every user in flight.
	Duration time.Duration
	// Slow is how long the slow command takes.
	Slow time.Duration
	// Idle is how long the bot's idle CPU is measured.
	Idle time.Duration
	// ReplyTimeout bounds the wait for each reply; StartTimeout for a bot
	// to answer its first command.
	ReplyTimeout, StartTimeout time.Duration
	// Log, if not nil, tells the progress.
	Log *slog.Logger
}

// DefaultConfig returns the defaults of the command's flags.
func DefaultConfig() Config {
	return Config{
		Python:       "/usr/bin/python3",
		Users:        10,
		Rounds:       3,
		Warmup:       5,
		Single:       300,
		Duration:     8 * time.Second,
		Slow:         2 * time.Second,
		Idle:         5 * time.Second,
		ReplyTimeout: 30 * time.Second,
		StartTimeout: 60 * time.Second,
	}
}

// Validate reports the first problem with c, worded for a user.
func (c Config) Validate() error {
	switch {
	case c.Bin == "":
		return fmt.Errorf("peerbench: the directory of the botmesh binary is not set (--bin; make build puts it in bin/)")
	case c.Users < 1:
		return fmt.Errorf("peerbench: --users must be at least 1, not %d", c.Users)
	case c.Rounds < 1:
		return fmt.Errorf("peerbench: --rounds must be at least 1, not %d", c.Rounds)
	case c.Single < 1:
		return fmt.Errorf("peerbench: --single must be at least 1, not %d", c.Single)
	case c.Warmup < 0:
		return fmt.Errorf("peerbench: --warmup must not be negative")
	case c.Duration <= 0 || c.Idle <= 0 || c.Slow <= 0:
		return fmt.Errorf("peerbench: --duration, --idle and --slow must be positive")
	case c.Duration <= c.Slow:
		return fmt.Errorf("peerbench: --duration (%s) must be longer than --slow (%s), or no slow command ends within a phase", c.Duration, c.Slow)
	case c.ReplyTimeout <= 0 || c.StartTimeout <= 0:
		return fmt.Errorf("peerbench: --reply_timeout and --start_timeout must be positive")
	}
	return nil
}

// Run measures the bots and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The bots run in directories of their own.
	bin, err := filepath.Abs(cfg.Bin)
	if err != nil {
		return nil, fmt.Errorf("peerbench: --bin: %w", err)
	}
	cfg.Bin = bin
	log := cfg.Log
	if log == nil {
		log = discard
	}
	dir, err := os.MkdirTemp("", "peerbench-")
	if err != nil {
		return nil, fmt.Errorf("peerbench: %w", err)
	}
	defer os.RemoveAll(dir)
	h := newHarness(dir)
	defer h.close()

	rep := &Report{
		Date:        time.Now().UTC().Format("2006-01-02"),
		Users:       cfg.Users,
		Rounds:      cfg.Rounds,
		Single:      cfg.Single,
		Duration:    cfg.Duration.String(),
		Slow:        cfg.Slow.String(),
		Idle:        cfg.Idle.String(),
		ErrbotAsync: cfg.ErrbotAsync,
		Bots:        []string{Botmesh},
	}
	if cfg.NoErrbot {
		rep.ErrbotMissing = "Errbot was not run (--no_errbot)"
	} else if rep.ErrbotMissing = errbotMissing(ctx, cfg.Python); rep.ErrbotMissing == "" {
		rep.Bots = append(rep.Bots, Errbot)
	}

	srv, users, err := startServer(h, cfg.Users)
	if err != nil {
		return nil, err
	}
	d := &driver{h: h, users: users, cfg: cfg, server: srv.pid}
	for r := range cfg.Rounds {
		order := slices.Clone(rep.Bots)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, name := range order {
			log.Info("measuring", "bot", name, "round", r+1)
			runDir := filepath.Join(dir, fmt.Sprintf("round%d-%s", r+1, name))
			if err := os.Mkdir(runDir, 0o755); err != nil {
				return nil, fmt.Errorf("peerbench: %w", err)
			}
			f, err := d.measure(ctx, name, srv, runDir)
			if err != nil {
				return nil, err
			}
			rep.Runs = append(rep.Runs, BotRun{Round: r + 1, Bot: name, Figures: f})
		}
	}
	rep.summarise()
	return rep, nil
}

// startServer starts Prosody with the accounts of both bots and the
// users, and logs the users in.
func startServer(h *harness, n int) (xmppServer, []*user, error) {
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	srv := xmppServer{password: hex.EncodeToString(pw)}
	accounts := map[string]string{"botmesh": srv.password, "errbot": srv.password}
	var users []*user
	for i := range n {
		name := fmt.Sprintf("user%d", i)
		accounts[name] = srv.password
		users = append(users, &user{name: name})
	}
	var ps *prosodytest.Server
	if err := catch(func() { ps = prosodytest.Start(h, accounts) }); err != nil {
		return srv, nil, fmt.Errorf("peerbench: start Prosody: %w", err)
	}
	srv.addr, srv.caFile, srv.pid = ps.Addr, ps.CAFile, ps.Pid()
	for _, u := range users {
		if err := catch(func() { u.c = ps.Login(h, u.name, srv.password) }); err != nil {
			return srv, nil, fmt.Errorf("peerbench: log %s in to Prosody: %w", u.name, err)
		}
	}
	return srv, users, nil
}

// measure starts the bot name, runs the phases against it and stops it.
func (d *driver) measure(ctx context.Context, name string, srv xmppServer, dir string) (f Figures, err error) {
	var b *bot
	if name == Botmesh {
		b, err = startBotmesh(ctx, d.cfg, srv, dir)
	} else {
		b, err = startErrbot(d.cfg, srv, dir)
	}
	if err != nil {
		return f, err
	}
	defer b.stop()
	if err := d.ready(ctx, b, "echo", 2*time.Second); err != nil {
		return f, err
	}
	// botmesh's router learns of the slow service from the registry.
	if err := d.ready(ctx, b, "slow", d.cfg.Slow+5*time.Second); err != nil {
		return f, err
	}
	for _, u := range d.users {
		for range d.cfg.Warmup {
			if _, err := d.ask(u, b, "echo", d.cfg.ReplyTimeout, true); err != nil {
				return f, fmt.Errorf("peerbench: %s, warm-up: %w", name, err)
			}
		}
	}
	if f.Single, err = d.phase(ctx, b, d.cfg.Single, 0, false); err != nil {
		return f, err
	}
	if f.Parallel, err = d.phase(ctx, b, 0, d.cfg.Duration, false); err != nil {
		return f, err
	}
	if f.SlowMix, err = d.phase(ctx, b, 0, d.cfg.Duration, true); err != nil {
		return f, err
	}
	// Let the last replies' work settle before measuring idle.
	select {
	case <-ctx.Done():
		return f, ctx.Err()
	case <-time.After(time.Second):
	}
	if f.IdleCPU, err = idle(ctx, b, d.cfg.Idle); err != nil {
		return f, fmt.Errorf("peerbench: idle CPU of %s: %w", name, err)
	}
	rss, err := bench.PeakRSS(b.pid())
	if err != nil {
		return f, fmt.Errorf("peerbench: memory of %s: %w", name, err)
	}
	f.PeakRSS = float64(rss) / 1024
	return f, nil
}
