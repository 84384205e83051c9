// Command relay is the demo stream processor: it posts a line to one
// conversation about each message of a command (deploy) said in another.
// Run with --help for its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/botmesh/botmesh/sdk/boot"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/natsconn"
	"github.com/botmesh/botmesh/sdk/stream"
	"github.com/botmesh/botmesh/services/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	cfg := relay.DefaultConfig()
	cfg.RegisterFlags(fs)
	name := fs.String("name", relay.Name, "the processor's name: its consumer's, and its NATS user's permissions name it")
	ncfg, log, err := boot.Parse(fs, boot.Spec{Name: "relay", Args: args, LogTo: os.Stderr})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := durable.ValidProcessorName(*name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	m, err := natsconn.Connect(ctx, ncfg, log)
	if err != nil {
		return err
	}
	defer m.Close()
	p, err := stream.New(m.NATS(), *name, stream.WithLogger(log))
	if err != nil {
		return err
	}
	return relay.Run(ctx, p, cfg)
}
