// Command gateway connects chat platforms to the botmesh mesh: it publishes
// what users say on NATS and posts the routers' replies back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/sdk/admin"
	"github.com/botmesh/botmesh/sdk/boot"
	"github.com/botmesh/botmesh/sdk/natsconn"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	cfg := gateway.DefaultConfig()
	cfg.RegisterFlags(fs)
	available := gateway.Inputs().Instantiate()
	inputs := fs.String("inputs", "", "comma-separated inputs to run: "+strings.Join(available.Names(), ", "))
	available.Flags(fs)
	adminAddr := admin.Flag(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: gateway --inputs=NAME[,NAME...] [flags]\n\nRelays chat messages from the inputs to the routers over NATS and posts the replies.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	ncfg, log, err := boot.Parse(fs, boot.Spec{Name: "gateway", Args: args, LogTo: os.Stderr})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	selected, err := available.Select(*inputs, adapter.Env{Stdin: os.Stdin, Stdout: os.Stdout, Log: log})
	if err != nil {
		return err
	}
	m, err := natsconn.Connect(ctx, ncfg, log)
	if err != nil {
		return err
	}
	defer m.Close()
	g, err := gateway.New(m.NATS(), selected, cfg, log)
	if err != nil {
		return err
	}
	adm := admin.New(*adminAddr, log)
	admin.RegisterNATS(adm.Registry(), m.NATS())
	if err := g.Register(adm.Registry()); err != nil {
		return err
	}
	adm.AddCheck("nats", admin.NATSCheck(m.NATS()))
	adm.AddCheck("inputs", g.Healthy)
	if err := adm.Start(ctx); err != nil {
		return err
	}
	return g.Run(ctx)
}
