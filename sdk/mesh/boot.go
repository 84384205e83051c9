package mesh

import (
	"context"
	"flag"
	"log/slog"

	"github.com/botmesh/botmesh/sdk/boot"
	microlog "go-micro.dev/v4/logger"
)

// Parse is boot.Parse for parts that speak go-micro: it adds the registry,
// transport and namespace flags to the NATS and log flags, and sends what
// go-micro logs on its own to the process's log.
func Parse(fs *flag.FlagSet, spec boot.Spec) (Config, *slog.Logger, error) {
	cfg := DefaultConfig()
	cfg.RegisterMicroFlags(fs)
	ncfg, log, err := boot.Parse(fs, spec)
	cfg.Config = ncfg
	if err != nil {
		return cfg, nil, err
	}
	// go-micro parts that were not handed a logger (its registry cache,
	// for one) write to this global: send them to the process log too.
	microlog.DefaultLogger = NewMicroLogger(log.With("component", "go-micro"))
	return cfg, log, nil
}

// Boot is Parse followed by Connect.
func Boot(ctx context.Context, fs *flag.FlagSet, spec boot.Spec) (*Mesh, *slog.Logger, error) {
	cfg, log, err := Parse(fs, spec)
	if err != nil {
		return nil, nil, err
	}
	m, err := Connect(ctx, cfg, WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	return m, log, nil
}
