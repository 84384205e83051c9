// Command greeter runs the botmesh demo go-micro service "greeter"
// (Greeter.Hello), for `query` and `health` to call. Run with --help for its
// flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/botmesh/botmesh/sdk/admin"
	"github.com/botmesh/botmesh/sdk/boot"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/services/greeter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "greeter:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("greeter", flag.ContinueOnError)
	name := fs.String("name", greeter.Name, "registry name of the service")
	adminAddr := admin.Flag(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: greeter [flags]\n\nServes the demo go-micro service greeter (Greeter.Hello) and Debug.Health.\n\n  query greeter Greeter.Hello {\"name\":\"Ada\"}\n\nFlags:\n")
		fs.PrintDefaults()
	}
	m, log, err := mesh.Boot(ctx, fs, boot.Spec{Name: "greeter", Args: args, LogTo: os.Stderr})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.Close()
	srv, err := greeter.New(m, *name)
	if err != nil {
		return err
	}
	adm := admin.New(*adminAddr, log)
	admin.RegisterNATS(adm.Registry(), m.NATS())
	adm.AddCheck("nats", admin.NATSCheck(m.NATS()))
	if err := adm.Start(ctx); err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	log.Info("serving", "registry_name", *name, "registry", m.Config().Registry, "transport", m.Config().Transport)
	<-ctx.Done()
	log.Info("stopping")
	if err := srv.Stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}
