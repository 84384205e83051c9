// Package lan announces a NATS server on the local network with mDNS
// (DNS-SD service type _botmesh-nats._tcp, github.com/hashicorp/mdns) and
// finds one announced there, so that the parts of a mesh on one LAN need no
// address.
//
// mDNS needs multicast: on a host whose interfaces have none (containers,
// some CI loopbacks) Announce and Find fail at once with an error, and
// callers fall back to explicit addresses. An announcement carries the
// server's IP addresses and port, never credentials.
package lan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/mdns"
)

// Service is the DNS-SD service type of an announced NATS server.
const Service = "_botmesh-nats._tcp"

// Domain is the mDNS domain.
const Domain = "local"

// marker is a TXT field every announcement carries; Find ignores answers
// without it (hashicorp/mdns hands a query every mDNS answer it hears).
const marker = "botmesh_nats=1"

// ErrNotFound means no announcement was heard within the wait.
var ErrNotFound = errors.New("lan: no NATS server announced on the LAN")

// Announcement answers mDNS queries for one NATS server until Stop.
type Announcement struct {
	srv  *mdns.Server
	urls []string
}

// Announce starts answering mDNS queries for the NATS server at addr
// ("nats://host:port", "host:port"; user and password are dropped). When
// host is 0.0.0.0, :: or empty, the addresses of this host's interfaces
// that are up are announced; a host name is resolved. log receives the mDNS
// library's own messages at debug level.
func Announce(addr string, log *slog.Logger) (*Announcement, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, port, err := hostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := announceIPs(host)
	if err != nil {
		return nil, err
	}
	id := randomID()
	instance := "nats-" + id
	svc, err := mdns.NewMDNSService(instance, Service, Domain+".", "botmesh-nats-"+id+"."+Domain+".", port, ips,
		[]string{marker, "port=" + strconv.Itoa(port)})
	if err != nil {
		return nil, fmt.Errorf("lan: announce %s: %w", redact(addr), err)
	}
	srv, err := mdns.NewServer(&mdns.Config{Zone: svc, Logger: stdLogger(log)})
	if err != nil {
		return nil, fmt.Errorf("lan: announce %s: %w", redact(addr), err)
	}
	a := &Announcement{srv: srv}
	for _, ip := range ips {
		a.urls = append(a.urls, "nats://"+net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	}
	return a, nil
}

// URLs returns the URLs the announcement gives, one per announced address.
func (a *Announcement) URLs() []string { return append([]string(nil), a.urls...) }

// Stop stops answering. It is safe to call more than once.
func (a *Announcement) Stop() error {
	if err := a.srv.Shutdown(); err != nil {
		return fmt.Errorf("lan: stop announcing: %w", err)
	}
	return nil
}

// Find sends one mDNS query for announced NATS servers and returns the URL
// of the first answer as soon as it arrives ("nats://ip:port"), or
// ErrNotFound when none came within wait (1s if wait <= 0), or the error
// that kept the query from being sent (no multicast). It returns early, with
// ctx's error, when ctx ends.
//
// hashicorp/mdns's Query always runs for its whole timeout, whatever its
// context says; Find does not wait for it: the query goes on in the
// background until wait has passed, with its sockets closed.
func Find(ctx context.Context, wait time.Duration, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if wait <= 0 {
		wait = time.Second
	}
	entries := make(chan *mdns.ServiceEntry, 32)
	qctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the query's sockets
	queryDone := make(chan error, 1)
	go func() {
		p := mdns.DefaultParams(Service)
		p.Domain = Domain
		p.Timeout = wait
		p.Entries = entries
		p.Logger = stdLogger(log)
		queryDone <- mdns.QueryContext(qctx, p)
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case e := <-entries:
			if u, ok := entryURL(e); ok {
				return u, nil
			}
			log.Debug("ignoring an mDNS answer", "name", e.Name)
		case err := <-queryDone:
			if err != nil {
				return "", fmt.Errorf("lan: mDNS query: %w", err)
			}
			queryDone = nil // ended at its timeout; the timer says so too
		case <-timer.C:
			return "", ErrNotFound
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// entryURL returns the NATS URL an answer announces, if it is one of ours.
func entryURL(e *mdns.ServiceEntry) (string, bool) {
	if e == nil || !strings.HasSuffix(e.Name, "."+Service+"."+Domain+".") || e.Port <= 0 {
		return "", false
	}
	ours := false
	for _, f := range e.InfoFields {
		if f == marker {
			ours = true
		}
	}
	if !ours {
		return "", false
	}
	var ip net.IP
	switch {
	case e.AddrV4 != nil:
		ip = e.AddrV4
	case e.AddrV6 != nil && !e.AddrV6.IsLinkLocalUnicast():
		ip = e.AddrV6
	default:
		return "", false
	}
	return "nats://" + net.JoinHostPort(ip.String(), strconv.Itoa(e.Port)), true
}

// hostPort reads the first server of a NATS URL list.
func hostPort(addr string) (string, int, error) {
	first := strings.TrimSpace(strings.Split(addr, ",")[0])
	hp := first
	if strings.Contains(first, "://") {
		u, err := url.Parse(first)
		if err != nil {
			return "", 0, fmt.Errorf("lan: NATS address %q is not a URL", redact(first))
		}
		hp = u.Host
	}
	if at := strings.LastIndex(hp, "@"); at >= 0 {
		hp = hp[at+1:]
	}
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("lan: NATS address %q has no port", redact(first))
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("lan: NATS address %q: bad port %q", redact(first), p)
	}
	return host, port, nil
}

// announceIPs returns the addresses to announce for host.
func announceIPs(host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return []net.IP{ip}, nil
	}
	if host != "" && net.ParseIP(host) == nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("lan: resolve %s: %w", host, err)
		}
		return ips, nil
	}
	// Every interface: announce the addresses of those that are up.
	// hashicorp/mdns's query keeps the last A record of an answer, so
	// loopback (usable on this host only) goes first.
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("lan: list interfaces: %w", err)
	}
	var ips, loop []net.IP
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			if ipn.IP.IsLoopback() {
				loop = append(loop, ipn.IP)
			} else {
				ips = append(ips, ipn.IP)
			}
		}
	}
	ips = append(loop, ips...)
	if len(ips) == 0 {
		return nil, errors.New("lan: this host has no address to announce")
	}
	return ips, nil
}

// redact drops the user information of a URL.
func redact(s string) string {
	if at := strings.LastIndex(s, "@"); at >= 0 {
		scheme := ""
		if i := strings.Index(s, "://"); i >= 0 && i < at {
			scheme = s[:i+3]
		}
		return scheme + "[REDACTED]" + s[at:]
	}
	return s
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// stdLogger adapts log to the *log.Logger hashicorp/mdns writes to.
func stdLogger(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.With("component", "mdns").Handler(), slog.LevelDebug)
}
