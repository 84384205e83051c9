// Package frontdoor is the one stable address in front of the web chat
// gateways of a compose environment: a reverse proxy that finds every
// replica of a service by name (Docker's DNS answers with one address per
// replica), sends each new browser to the next one, and keeps a browser on
// its replica with a cookie, because a web chat session and its reply
// history live in one gateway process. Websockets pass through.
//
// Scaling the gateways or recreating them changes their addresses, never
// the front door's port: a browser whose replica is gone gets another one
// (a new session there, as after a gateway restart).
package frontdoor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CookieName is the cookie that keeps a browser on its gateway replica.
const CookieName = "botmesh_frontdoor"

// Config says where the gateways are.
type Config struct {
	// Backend is host:port of the gateways; every address the host resolves
	// to is a replica.
	Backend string
	// Lookup resolves the host (default: net.DefaultResolver.LookupHost).
	Lookup func(ctx context.Context, host string) ([]string, error)
	// Refresh is how long a lookup's answer is used (default 1s).
	Refresh time.Duration
	// DownFor is how long a replica that refused a connection is passed
	// over for new browsers (default 5s).
	DownFor time.Duration
	// Log receives the changes of the set of replicas and failed dials.
	Log *slog.Logger
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Backend); err != nil {
		return fmt.Errorf("frontdoor: backend %q: %w", c.Backend, err)
	}
	return nil
}

// Proxy is the front door: an http.Handler.
type Proxy struct {
	host, port string
	lookup     func(ctx context.Context, host string) ([]string, error)
	refresh    time.Duration
	downFor    time.Duration
	log        *slog.Logger
	rp         *httputil.ReverseProxy
	next       atomic.Uint64

	mu      sync.Mutex
	addrs   []string // host:port of each replica, sorted
	fetched time.Time
	down    map[string]time.Time // replica → until when it is passed over
}

// New returns the front door for cfg.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Proxy{lookup: cfg.Lookup, refresh: cfg.Refresh, downFor: cfg.DownFor, log: cfg.Log, down: map[string]time.Time{}}
	p.host, p.port, _ = net.SplitHostPort(cfg.Backend)
	if p.lookup == nil {
		p.lookup = net.DefaultResolver.LookupHost
	}
	if p.refresh <= 0 {
		p.refresh = time.Second
	}
	if p.downFor <= 0 {
		p.downFor = 5 * time.Second
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			// The gateway checks Host and Origin against each other and
			// against the names it answers to: keep the browser's.
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = "replica" // set per attempt by the transport
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		Transport:      &transport{p: p, base: http.DefaultTransport},
		ModifyResponse: p.setCookie,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("no web gateway answered", "path", r.URL.Path, "err", err)
			http.Error(w, "botmesh: no web chat gateway answers right now; try again in a moment", http.StatusBadGateway)
		},
	}
	return p, nil
}

// choiceKey carries a request's *choice from ServeHTTP to the transport and
// ModifyResponse.
type choiceKey struct{}

// choice is where one request goes.
type choice struct {
	order []string // replicas to try, the preferred first
	used  string   // the one that answered
	had   string   // the replica the browser's cookie named, if any
}

// ServeHTTP sends r to the browser's replica, or to the next one.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	addrs, err := p.Replicas(r.Context())
	if err != nil || len(addrs) == 0 {
		p.log.Warn("no web gateway found", "backend", net.JoinHostPort(p.host, p.port), "err", err)
		http.Error(w, "botmesh: no web chat gateway is running", http.StatusServiceUnavailable)
		return
	}
	c := &choice{order: p.order(addrs, cookieReplica(r, addrs))}
	if ck, err := r.Cookie(CookieName); err == nil {
		c.had = ck.Value
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), choiceKey{}, c)))
}

// Replicas returns the gateways' addresses (host:port), looked up at most
// once per Refresh; after a failed lookup, the last ones found.
func (p *Proxy) Replicas(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.fetched.IsZero() && time.Since(p.fetched) < p.refresh {
		return p.addrs, nil
	}
	ips, err := p.lookup(ctx, p.host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			// No replica at all (scaled to zero, or not started yet).
			p.setReplicas(nil)
			return nil, err
		}
		return p.addrs, err
	}
	addrs := make([]string, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, p.port))
	}
	slices.Sort(addrs)
	p.setReplicas(slices.Compact(addrs))
	return p.addrs, nil
}

// setReplicas records a lookup's answer; p.mu is held.
func (p *Proxy) setReplicas(addrs []string) {
	p.fetched = time.Now()
	if !slices.Equal(addrs, p.addrs) {
		p.log.Info("web gateways", "count", len(addrs), "addresses", addrs)
	}
	p.addrs = addrs
}

// order returns the replicas to try: the browser's (sticky) one first,
// else the next in turn among those not recently down; then the others.
func (p *Proxy) order(addrs []string, sticky string) []string {
	now := time.Now()
	p.mu.Lock()
	var up, down []string
	for _, a := range addrs {
		if until, ok := p.down[a]; ok && now.Before(until) {
			down = append(down, a)
		} else {
			up = append(up, a)
		}
	}
	p.mu.Unlock()
	order := make([]string, 0, len(addrs))
	if sticky != "" {
		order = append(order, sticky)
	}
	if len(up) > 0 {
		start := 0
		if sticky == "" {
			// A new browser: the next replica in turn.
			start = int(p.next.Add(1) % uint64(len(up)))
		}
		for i := range up {
			if a := up[(start+i)%len(up)]; a != sticky {
				order = append(order, a)
			}
		}
	}
	for _, a := range down {
		if a != sticky {
			order = append(order, a)
		}
	}
	return order
}

func (p *Proxy) markDown(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down[addr] = time.Now().Add(p.downFor)
	for a, until := range p.down {
		if time.Now().After(until) {
			delete(p.down, a)
		}
	}
}

// ReplicaID is the cookie value naming a replica: opaque to the browser.
func ReplicaID(addr string) string {
	sum := sha256.Sum256([]byte(addr))
	return hex.EncodeToString(sum[:8])
}

// cookieReplica returns the replica among addrs that r's cookie names.
func cookieReplica(r *http.Request, addrs []string) string {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ReplicaID(a) == ck.Value {
			return a
		}
	}
	return ""
}

// setCookie points the browser at the replica that answered, when its
// cookie did not already.
func (p *Proxy) setCookie(rsp *http.Response) error {
	c, _ := rsp.Request.Context().Value(choiceKey{}).(*choice)
	if c == nil || c.used == "" {
		return nil
	}
	if id := ReplicaID(c.used); id != c.had {
		ck := &http.Cookie{Name: CookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode}
		rsp.Header.Add("Set-Cookie", ck.String())
	}
	return nil
}

// transport sends a request to the first replica of its choice that takes
// the connection: a replica that is gone (refused or unreachable) is passed
// over, for requests without a body (page loads and websocket upgrades).
type transport struct {
	p    *Proxy
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, _ := req.Context().Value(choiceKey{}).(*choice)
	if c == nil || len(c.order) == 0 {
		return nil, errors.New("frontdoor: no replica chosen")
	}
	retry := req.Body == nil || req.Body == http.NoBody
	var err error
	for i, addr := range c.order {
		if i == 3 || i > 0 && !retry {
			break
		}
		out := req.Clone(req.Context())
		out.URL.Host = addr
		var rsp *http.Response
		rsp, err = t.base.RoundTrip(out)
		if err == nil {
			c.used = addr
			return rsp, nil
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			return nil, err
		}
		t.p.log.Warn("web gateway refused the connection; trying another", "address", addr, "err", err)
		t.p.markDown(addr)
	}
	return nil, err
}
