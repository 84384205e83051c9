// Command frontdoor is the compose environment's one web chat address: a
// reverse proxy in front of every replica of the web gateway, sticky per
// browser (see internal/frontdoor). Scaling or recreating the gateways
// does not move it.
//
//	frontdoor --listen :8080 --backend gateway-web:8080 --admin_address :8081
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/botmesh/botmesh/internal/frontdoor"
	"github.com/botmesh/botmesh/sdk/admin"
	"github.com/botmesh/botmesh/sdk/flagenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "frontdoor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("frontdoor", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "address browsers reach")
	backend := fs.String("backend", "gateway-web:8080", "host:port of the web gateways; each address the host resolves to is a replica")
	adminAddr := admin.Flag(fs)
	logFormat := fs.String("log_format", "text", "text or json")
	grace := fs.Duration("shutdown_grace", 5*time.Second, "time to finish requests in flight on SIGTERM")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: frontdoor [flags]\n\nOne web chat address in front of every web gateway replica, sticky per browser.\nEach flag can also be set as BOTMESH_<FLAG>.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := flagenv.Parse(fs, args, os.LookupEnv); err != nil {
		return err
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *logFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(h).With("component", "frontdoor")
	p, err := frontdoor.New(frontdoor.Config{Backend: *backend, Log: log})
	if err != nil {
		return err
	}
	adm := admin.New(*adminAddr, log)
	adm.AddCheck("gateways", func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		addrs, err := p.Replicas(ctx)
		if len(addrs) == 0 {
			return fmt.Errorf("no web gateway found at %s: %v", *backend, err)
		}
		return nil
	})
	if err := adm.Start(ctx); err != nil {
		return err
	}
	srv := &http.Server{Addr: *listen, Handler: p, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("serving", "listen", *listen, "backend", *backend)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
