package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/botmesh/botmesh/sdk/lan"
)

// DefaultLANWait is how long one mDNS query for an announced NATS server
// waits for an answer.
const DefaultLANWait = time.Second

// localNATS is where a NATS server on this host listens by default, and
// lanFind looks on the LAN (both replaced in tests).
var (
	localNATS = "127.0.0.1:4222"
	lanFind   = lan.Find
)

// findNATS picks the NATS server for a process given no address: one
// listening on 127.0.0.1:4222 (checked first: a refused or accepted TCP
// connection on loopback takes well under a millisecond, so the old default
// stays as fast as it was), else the first one announced on the LAN. It
// keeps looking, a probe and one mDNS query of cfg.LANWait at a time, until
// one is found or ctx ends, so parts may start before the server. If mDNS
// cannot work here (no multicast), it falls back at once to the default
// URL, which Connect then waits for as before.
func findNATS(ctx context.Context, cfg Config, log *slog.Logger) (string, error) {
	wait := cfg.LANWait
	if wait <= 0 {
		wait = DefaultLANWait
	}
	started := time.Now()
	for round := 0; ; round++ {
		if localListening(ctx) {
			log.Info("found NATS on this host", "url", "nats://"+localNATS, "took", time.Since(started))
			return "nats://" + localNATS, nil
		}
		u, err := lanFind(ctx, wait, log)
		switch {
		case err == nil:
			log.Info("found NATS announced on the LAN", "url", u, "took", time.Since(started))
			return u, nil
		case ctx.Err() != nil:
			return "", fmt.Errorf("mesh: no NATS server found on %s or announced on the LAN: %w", localNATS, context.Cause(ctx))
		case !errors.Is(err, lan.ErrNotFound):
			log.Warn("cannot look for NATS on the LAN; using the default", "url", "nats://"+localNATS, "err", err)
			return "nats://" + localNATS, nil
		}
		if round == 0 {
			log.Info("no NATS server on this host or announced on the LAN yet; still looking (give --nats_url to skip this)", "local", localNATS, "service", lan.Service)
		}
	}
}

// localListening reports whether something accepts TCP connections on
// localNATS.
func localListening(ctx context.Context) bool {
	d := net.Dialer{Timeout: 250 * time.Millisecond}
	c, err := d.DialContext(ctx, "tcp", localNATS)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
