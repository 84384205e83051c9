package natsconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
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

// findNATS picks the NATS server for a process given no address and
// started with --find_nats (Config.FindNATS): one listening on
// 127.0.0.1:4222 (checked first: a refused or accepted TCP connection on
// loopback takes well under a millisecond, so the old default stays as fast
// as it was), else the first one announced on the LAN. It keeps looking, a
// probe and one mDNS query of cfg.LANWait at a time, until one is found or
// ctx ends, so parts may start before the server. If mDNS cannot work here
// (no multicast), it falls back at once to the default URL, which Connect
// then waits for as before.
//
// Anyone on the LAN can announce a server: one found there gets this
// process's credentials only if it proves itself with TLS (see vetFound),
// and the Auth returned then requires TLS on every connection.
func findNATS(ctx context.Context, cfg Config, log *slog.Logger) (string, Auth, error) {
	wait := cfg.LANWait
	if wait <= 0 {
		wait = DefaultLANWait
	}
	started := time.Now()
	for round := 0; ; round++ {
		if localListening(ctx) {
			log.Info("found NATS on this host", "url", "nats://"+localNATS, "took", time.Since(started))
			return "nats://" + localNATS, cfg.Auth, nil
		}
		u, err := lanFind(ctx, wait, log)
		switch {
		case err == nil:
			log.Info("found NATS announced on the LAN", "url", u, "took", time.Since(started))
			return vetFound(ctx, u, cfg.Auth, log)
		case ctx.Err() != nil:
			return "", cfg.Auth, fmt.Errorf("no NATS server found on %s or announced on the LAN: %w", localNATS, context.Cause(ctx))
		case !errors.Is(err, lan.ErrNotFound):
			log.Warn("cannot look for NATS on the LAN; using the default", "url", "nats://"+localNATS, "err", err)
			return "nats://" + localNATS, cfg.Auth, nil
		}
		if round == 0 {
			log.Info("no NATS server on this host or announced on the LAN yet; still looking (give --nats_url to skip this)", "local", localNATS, "service", lan.Service)
		}
	}
}

// tlsProbeTimeout bounds the TLS check of a server found on the LAN.
const tlsProbeTimeout = 5 * time.Second

// vetFound decides whether the server announced on the LAN at u may have
// a's credentials. Without credentials there is nothing to keep from it: u
// is used as found. With them, the server must first prove itself with
// TLS: vetFound reads its INFO, then completes a TLS handshake whose
// certificate must verify for u's address against --nats_tls_ca (or the CA
// in a botmesh credentials file, or the system's roots). Nothing but the
// TLS ClientHello is sent before that, and no credential at all. If the
// check fails, the server is refused with an error that says why; if it
// passes, the URL returned is tls:// and the Auth requires TLS, so no later
// connection (the go-micro plugins' included) falls back to plain text.
func vetFound(ctx context.Context, u string, a Auth, log *slog.Logger) (string, Auth, error) {
	if !a.HasCredentials() {
		return u, a, nil
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return "", a, fmt.Errorf("the NATS address announced on the LAN, %q, is not a URL", u)
	}
	tc, err := a.tlsConfig()
	if err != nil {
		return "", a, err
	}
	if err := verifyTLS(ctx, pu.Host, tc); err != nil {
		return "", a, fmt.Errorf("refusing the NATS server found on the LAN at %s: %w, and this process sends its credentials only to a server whose TLS certificate it verifies. Give the server's address with --nats_url, or serve it with TLS and trust its CA (--nats_tls_ca, or the CA in --nats_creds)", u, err)
	}
	log.Info("the NATS server found on the LAN proved itself with TLS", "url", "tls://"+pu.Host)
	a.requireTLS = true
	return "tls://" + pu.Host, a, nil
}

// verifyTLS checks that the NATS server at addr (host:port) speaks TLS
// with a certificate tc verifies for host. It reads the server's INFO
// (sent in clear text before any TLS) and then shakes hands; it never
// sends a NATS command.
func verifyTLS(ctx context.Context, addr string, tc *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, tlsProbeTimeout)
	defer cancel()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("its address %q has no port", addr)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("it cannot be reached (%w)", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	br := bufio.NewReaderSize(c, 4096)
	line, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("it sent no NATS INFO (%w)", err)
	}
	info, ok := strings.CutPrefix(line, "INFO ")
	if !ok {
		return errors.New("it does not speak NATS")
	}
	var si struct {
		TLSRequired  bool `json:"tls_required"`
		TLSAvailable bool `json:"tls_available"`
	}
	if err := json.Unmarshal([]byte(info), &si); err != nil {
		return errors.New("its NATS INFO is not JSON")
	}
	if !si.TLSRequired && !si.TLSAvailable {
		return errors.New("it does not offer TLS")
	}
	if br.Buffered() > 0 {
		return errors.New("it sent more than its INFO before TLS")
	}
	tc = tc.Clone()
	tc.ServerName = host
	tc.InsecureSkipVerify = false
	tlsConn := tls.Client(c, tc)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("its TLS certificate does not verify for %s (%w)", host, err)
	}
	return nil
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
