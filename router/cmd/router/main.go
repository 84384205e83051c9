// Command router runs a botmesh router: it answers the chat messages that
// gateways publish on NATS, with built-in commands and the command services
// of the go-micro registry. Run any number of them; they share the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/sdk/admin"
	"github.com/botmesh/botmesh/sdk/boot"
	"github.com/botmesh/botmesh/sdk/mesh"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "router:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	cfg := router.DefaultConfig()
	cfg.RegisterFlags(fs)
	policyFile := fs.String("policy", "", "policy file (YAML) saying who may run what (default: the shipped policy; see --print_default_policy)")
	printPolicy := fs.Bool("print_default_policy", false, "print the shipped policy and exit")
	adminAddr := admin.Flag(fs)
	pprofAddr := admin.PprofFlag(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: router [flags]\n\nAnswers chat messages from the gateways (NATS subject bot.v1.in.>, queue group router)\nwith built-in commands and the command services registered under the namespace.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	mcfg, log, err := mesh.Parse(fs, boot.Spec{Name: "router", Args: args, LogTo: os.Stderr})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if *printPolicy {
		_, err := os.Stdout.Write(policy.DefaultYAML())
		return err
	}
	if *policyFile != "" {
		if cfg.Policy, err = policy.Load(*policyFile); err != nil {
			return err
		}
	}
	m, err := mesh.Connect(ctx, mcfg, mesh.WithLogger(log))
	if err != nil {
		return err
	}
	defer m.Close()
	r, err := router.New(m, cfg)
	if err != nil {
		return err
	}
	adm := admin.New(*adminAddr, log)
	admin.RegisterNATS(adm.Registry(), m.NATS())
	if err := r.Register(adm.Registry()); err != nil {
		return err
	}
	adm.AddCheck("nats", admin.NATSCheck(m.NATS()))
	adm.AddCheck("router", r.Healthy)
	if err := adm.Start(ctx); err != nil {
		return err
	}
	if err := admin.ServePprof(ctx, *pprofAddr, log); err != nil {
		return err
	}
	return r.Run(ctx)
}
