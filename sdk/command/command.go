// Package command serves a botmesh command: a go-micro service named
// <namespace>.<name> that implements the Command RPC (Help and Exec). The
// router finds it in the registry and sends it every message whose first
// word is name; deploying the service is all it takes to add a command.
//
//	func main() {
//		if err := command.Main(context.Background(), os.Args[1:], "echo", echo.Handler{}); err != nil {
//			fmt.Fprintln(os.Stderr, "echo:", err)
//			os.Exit(1)
//		}
//	}
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/admin"
	"github.com/botmesh/botmesh/sdk/boot"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/prometheus/client_golang/prometheus"
	dbghandler "go-micro.dev/v4/debug/handler"
	dbgpb "go-micro.dev/v4/debug/proto"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
)

// Service is one running command service.
type Service struct {
	name string
	srv  server.Server

	mu       sync.Mutex
	inflight int
	idle     chan struct{} // closed when inflight drops to 0 while draining

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// DrainTimeout bounds how long Stop waits for the requests in flight.
const DrainTimeout = 30 * time.Second

// New builds the command service called name (its registry name is the
// mesh's namespace + "." + name) serving h. It also mounts go-micro's Debug
// handler, so `health` and other micro tooling can ask the service for its
// state. opts are passed to the go-micro server (e.g. server.Version).
func New(m *mesh.Mesh, name string, h chatopsv1.CommandHandler, opts ...server.Option) (*Service, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	full := m.ServiceName(name)
	s := &Service{
		name: full,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botmesh_command_requests_total", Help: "Requests served, by endpoint and outcome (ok, error).", ConstLabels: prometheus.Labels{"service": full},
		}, []string{"endpoint", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "botmesh_command_duration_seconds", Help: "Time to serve a request, by endpoint.", ConstLabels: prometheus.Labels{"service": full},
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
	}
	opts = append([]server.Option{server.WrapHandler(s.track), server.WrapHandler(guard(full, m.Logger()))}, opts...)
	srv := m.NewServer(full, opts...)
	s.srv = srv
	if err := registerHandler(srv, h); err != nil {
		return nil, fmt.Errorf("command %s: register handler: %w", name, err)
	}
	if err := dbgpb.RegisterDebugHandler(srv, dbghandler.NewHandler(m.NewClient()), server.InternalHandler(true)); err != nil {
		return nil, fmt.Errorf("command %s: register debug handler: %w", name, err)
	}
	return s, nil
}

// Validator is a command handler that can check a request without running
// it: the router asks it (the endpoint Command.Validate) before it asks a
// user to confirm a command, so that bad input is refused at once rather
// than after a "yes". Validate answers as Exec does (a failure the user
// should read in rsp.Error) but changes nothing; nil error and an empty
// rsp.Error mean the request would run.
type Validator interface {
	chatopsv1.CommandHandler
	Validate(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error
}

// registerHandler serves h as the Command handler: Help and Exec, and
// Validate when h is a Validator.
func registerHandler(srv server.Server, h chatopsv1.CommandHandler) error {
	v, ok := h.(Validator)
	if !ok {
		return chatopsv1.RegisterCommandHandler(srv, h)
	}
	// go-micro names the endpoints after the type: Command.Help,
	// Command.Exec, Command.Validate.
	type Command struct{ Validator }
	return srv.Handle(srv.NewHandler(&Command{v}))
}

// Register adds the service's metrics to reg.
func (s *Service) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{s.requests, s.duration} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// track counts the requests in flight, so that Stop can wait for them, and
// measures them.
func (s *Service) track(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) (err error) {
		start := time.Now()
		defer func() {
			status := "ok"
			if r, ok := rsp.(*chatopsv1.ExecResponse); err != nil || ok && r.Error != "" {
				status = "error"
			}
			s.requests.WithLabelValues(req.Endpoint(), status).Inc()
			s.duration.WithLabelValues(req.Endpoint()).Observe(time.Since(start).Seconds())
		}()
		s.mu.Lock()
		s.inflight++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.inflight--
			if s.inflight == 0 && s.idle != nil {
				close(s.idle)
				s.idle = nil
			}
			s.mu.Unlock()
		}()
		return next(ctx, req, rsp)
	}
}

// MaxResultBytes is the largest result a command service sends. The NATS
// transport cannot carry a message over the server's payload limit (1 MiB by
// default) and base64-encodes bodies, so a larger result would never arrive;
// it is cut here, with a note, instead.
const MaxResultBytes = 512 << 10

// guard turns a panic in a handler into an error answer (without it
// go-micro's NATS transport swallows the panic and the caller waits for its
// whole timeout), and cuts results over MaxResultBytes.
func guard(service string, log *slog.Logger) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) (err error) {
			defer func() {
				if p := recover(); p != nil {
					log.Error("command panicked", "service", service, "endpoint", req.Endpoint(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					err = merrors.InternalServerError(service, "command panicked: %v", p)
				}
			}()
			err = next(ctx, req, rsp)
			if r, ok := rsp.(*chatopsv1.ExecResponse); ok && len(r.Result) > MaxResultBytes {
				r.Result = Cut(r.Result, MaxResultBytes)
			}
			return err
		}
	}
}

// Cut shortens text to at most limit bytes, at a UTF-8 character boundary,
// ending with a note that says how many bytes were cut.
func Cut(text []byte, limit int) []byte {
	if len(text) <= limit {
		return text
	}
	keep := max(limit-128, 0) // room for the note
	for keep > 0 && !utf8.RuneStart(text[keep]) {
		keep--
	}
	note := fmt.Sprintf("\n… [cut: %d of %d bytes not shown; the limit is %d]", len(text)-keep, len(text), limit)
	return append(text[:keep:keep], note...)
}

// ValidName reports whether name can be a command name: one or more
// lower-case words of letters, digits, '-' and '_' joined by dots.
func ValidName(name string) error {
	if name == "" {
		return errors.New("command: empty name")
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" {
			return fmt.Errorf("command: name %q has an empty part", name)
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("command: name %q: %q is not a lower-case letter, digit, '-' or '_'", name, r)
			}
		}
	}
	return nil
}

// Name returns the service's registry name, e.g. go.micro.bot.echo.
func (s *Service) Name() string { return s.name }

// Server returns the underlying go-micro server (to add handlers).
func (s *Service) Server() server.Server { return s.srv }

// Start starts serving and registers the service. The router sees it within
// a second with the NATS registry.
func (s *Service) Start() error {
	if err := s.srv.Start(); err != nil {
		return fmt.Errorf("command %s: start: %w", s.name, err)
	}
	return nil
}

// Stop deregisters the service (so routers stop sending to it), waits up
// to DrainTimeout for the requests in flight, and stops.
func (s *Service) Stop() error {
	var errs []error
	if d, ok := s.srv.(interface{ Deregister() error }); ok {
		if err := d.Deregister(); err != nil {
			errs = append(errs, fmt.Errorf("deregister: %w", err))
		}
	}
	s.mu.Lock()
	var idle chan struct{}
	if s.inflight > 0 {
		s.idle = make(chan struct{})
		idle = s.idle
	}
	s.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-time.After(DrainTimeout):
			errs = append(errs, fmt.Errorf("requests still in flight after %s", DrainTimeout))
		}
	}
	if err := s.srv.Stop(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("command %s: stop: %w", s.name, err)
	}
	return nil
}

// Serve starts s, serves until ctx is done, then stops it.
func (s *Service) Serve(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Stop()
}

// Main is the whole main of a command service binary: it parses args (mesh
// and log flags, each also read from BOTMESH_<FLAG>), connects to the mesh,
// serves h as the command name until SIGINT or SIGTERM, and returns nil after
// a clean stop.
func Main(ctx context.Context, args []string, name string, h chatopsv1.CommandHandler) error {
	return MainFunc(ctx, args, name, nil, func(*mesh.Mesh) (chatopsv1.CommandHandler, error) { return h, nil })
}

// MainFunc is Main for a handler that needs the mesh (a go-micro client, the
// registry) or flags of its own: flags, if not nil, adds them to the flag
// set; build makes the handler once the flags are parsed and the mesh is up.
func MainFunc(ctx context.Context, args []string, name string, flags func(*flag.FlagSet), build func(*mesh.Mesh) (chatopsv1.CommandHandler, error)) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if flags != nil {
		flags(fs)
	}
	adminAddr := admin.Flag(fs)
	pprofAddr := admin.PprofFlag(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\nServes the botmesh command %q as the go-micro service <namespace>.%s.\n\nFlags:\n", name, name, name)
		fs.PrintDefaults()
	}
	m, log, err := mesh.Boot(ctx, fs, boot.Spec{Name: name, Args: args, LogTo: os.Stderr})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.Close()
	h, err := build(m)
	if err != nil {
		return err
	}
	svc, err := New(m, name, h)
	if err != nil {
		return err
	}
	adm := admin.New(*adminAddr, log)
	admin.RegisterNATS(adm.Registry(), m.NATS())
	if err := svc.Register(adm.Registry()); err != nil {
		return err
	}
	adm.AddCheck("nats", admin.NATSCheck(m.NATS()))
	if err := adm.Start(ctx); err != nil {
		return err
	}
	if err := admin.ServePprof(ctx, *pprofAddr, log); err != nil {
		return err
	}
	if err := svc.Start(); err != nil {
		return err
	}
	log.Info("serving", "registry_name", svc.Name(), "registry", m.Config().Registry, "transport", m.Config().Transport)
	<-ctx.Done()
	log.Info("stopping")
	return svc.Stop()
}
