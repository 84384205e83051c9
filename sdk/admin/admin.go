// Package admin serves what operators and orchestrators ask a botmesh
// process: /healthz (ready: every check passes), /livez (the process
// serves) and /metrics (Prometheus), on an admin address apart from the
// traffic. Container images are FROM scratch, with no curl: Probe lets the
// binary itself be its health check (`router healthcheck`).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports nil when a part is ready, else what is wrong.
type Check func() error

// Server is the admin HTTP server of one process.
type Server struct {
	addr string
	log  *slog.Logger
	reg  *prometheus.Registry

	mu     sync.Mutex
	checks map[string]Check
}

// New returns an admin server for addr ("" disables serving; metrics are
// still collected). Its registry has the Go and process collectors.
func New(addr string, log *slog.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Server{addr: addr, log: log, reg: reg, checks: map[string]Check{}}
}

// Registry is where the process registers its metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// AddCheck adds a readiness check; /healthz fails while any check fails.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

// Status is the /healthz body.
type Status struct {
	Status string            `json:"status"` // "ok" or "unavailable"
	Checks map[string]string `json:"checks"` // name → "ok" or the problem
}

// Health runs the checks.
func (s *Server) Health() Status {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)
	st := Status{Status: "ok", Checks: map[string]string{}}
	for _, n := range names {
		if err := checks[n](); err != nil {
			st.Status = "unavailable"
			st.Checks[n] = err.Error()
		} else {
			st.Checks[n] = "ok"
		}
	}
	return st
}

// Handler returns the admin routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st := s.Health()
		w.Header().Set("Content-Type", "application/json")
		if st.Status != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	return mux
}

// Flag adds --admin_address to fs and returns its value.
func Flag(fs *flag.FlagSet) *string {
	return fs.String("admin_address", "", "address of /healthz, /livez and /metrics, e.g. :8081 (default: not served)")
}

// Start listens on the admin address and serves until ctx ends. With no
// address it does nothing. A failure to listen is returned at once.
func (s *Server) Start(ctx context.Context) error {
	if s.addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", s.addr, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.log.Info("admin server", "address", l.Addr().String())
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	return nil
}

// NATSCheck is ready while nc is connected.
func NATSCheck(nc *nats.Conn) Check {
	return func() error {
		if nc.IsConnected() {
			return nil
		}
		return fmt.Errorf("NATS %s", nc.Status())
	}
}

// RegisterNATS adds gauges of nc's state to reg: connected (1/0) and the
// reconnects, messages and bytes it counted.
func RegisterNATS(reg prometheus.Registerer, nc *nats.Conn) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "botmesh_nats_connected", Help: "1 while the NATS connection is up."}, func() float64 {
			if nc.IsConnected() {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "botmesh_nats_reconnects_total", Help: "NATS reconnections."}, func() float64 {
			return float64(nc.Stats().Reconnects)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "botmesh_nats_in_messages_total", Help: "Messages received from NATS."}, func() float64 {
			return float64(nc.Stats().InMsgs)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "botmesh_nats_out_messages_total", Help: "Messages sent to NATS."}, func() float64 {
			return float64(nc.Stats().OutMsgs)
		}),
	)
}

// Probe asks the admin server at addr for /healthz and returns nil when it
// answers ready: the health check of a container without curl.
func Probe(ctx context.Context, addr string) error {
	if addr == "" {
		return errors.New("admin: no --admin_address to probe")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin: address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer rsp.Body.Close()
	var st Status
	if err := json.NewDecoder(rsp.Body).Decode(&st); err != nil {
		return fmt.Errorf("admin: /healthz answered %s", rsp.Status)
	}
	if rsp.StatusCode != http.StatusOK {
		var bad []string
		for n, v := range st.Checks {
			if v != "ok" {
				bad = append(bad, n+": "+v)
			}
		}
		sort.Strings(bad)
		return fmt.Errorf("not ready: %v", bad)
	}
	return nil
}

// PprofFlag adds --pprof_address to fs and returns its value: where
// ServePprof serves Go's profiles, apart from the admin address as
// nats-server's -profile port is (a CPU profile costs CPU, so it is off
// unless asked for).
func PprofFlag(fs *flag.FlagSet) *string {
	return fs.String("pprof_address", "", "address of Go's /debug/pprof profiles, e.g. 127.0.0.1:6060 (default: not served)")
}

// ServePprof serves net/http/pprof on addr until ctx ends. With no address
// it does nothing. A failure to listen is returned at once.
func ServePprof(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: pprof: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("pprof server", "address", l.Addr().String())
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	return nil
}
