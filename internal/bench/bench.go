// Package bench measures the botmesh mesh as it is deployed: nats-server,
// router(s) and the echo command service each run as their own OS process,
// and the bench process is the gateway (the gateway package itself, with a
// synthetic input that plays many users). In the same run it measures the
// floor under the mesh: a raw NATS request-reply of the same message sizes,
// and a raw go-micro Command.Exec call to the echo service with no router
// in between, and composes from them the composite floor (one go-micro
// call and two NATS request-replies: what a command must cost; floor.go).
// For each it reports commands per second, latency percentiles, CPU time
// per command summed over every process of the mesh, and the peak
// resident memory of each process; the mesh's figures are also given as
// ratios to the baselines' and the floor's. It measures the mesh the
// seed's way too, the router calling echo over go-micro's http transport.
//
// It also measures each part at rest (a real gateway process among them:
// memory and CPU per second), times the all-in-one (ready to answer, at
// rest, and a burst of pings through its shell input) and how soon a newly
// started command service is usable.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/parse"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config says what to measure. Zero fields take DefaultConfig's values,
// except the booleans.
type Config struct {
	// Bin is the directory with the binaries (nats-server, router, gateway, echo,
	// query, botmesh); empty builds them into a temporary directory.
	Bin string
	// Count is the number of commands of each measured run at
	// Concurrency; Duration bounds each run (whichever comes first).
	Count    int
	Duration time.Duration
	// Concurrency is the number of commands awaiting their reply at once.
	Concurrency int
	// SingleCount is the number of commands of the single-flight runs
	// (concurrency 1); negative skips them.
	SingleCount int
	// Warmup commands precede each measured run, unmeasured.
	Warmup int
	// Command is the message text the synthetic users send.
	Command string
	// Delivery is the routers' and the gateway's: jetstream or core.
	Delivery string
	// Routers is the number of router processes.
	Routers int
	// Transport is the go-micro transport of the routers, the echo
	// service and the go-micro baseline.
	Transport string
	// Dedup keeps the gateway's de-duplication of event ids (as deployed)
	// on.
	Dedup bool
	// Baselines measures raw NATS request-reply and raw go-micro calls.
	Baselines bool
	// Burst is the number of pings sent at once to the all-in-one; 0
	// skips the all-in-one.
	Burst int
	// Discovery times how soon a newly started command service is usable.
	Discovery bool
	// Seed also measures the mesh with the router calling the command
	// service over go-micro's default http transport, the seed's (Micro
	// Bot's) design, after the mesh over Transport.
	Seed bool
	// Idle is how long every part of the mesh (and the all-in-one) is
	// left at rest to measure its memory and CPU; negative skips it.
	Idle time.Duration
	// ProfileDir, if not empty, receives CPU profiles of every process
	// during the mesh run at Concurrency, for ProfileSeconds.
	ProfileDir     string
	ProfileSeconds int
	// Log receives progress (nil: discarded).
	Log *slog.Logger
}

// DefaultConfig returns the defaults of botbench's flags.
func DefaultConfig() Config {
	return Config{
		Count:          20000,
		Duration:       60 * time.Second,
		Concurrency:    64,
		SingleCount:    2000,
		Warmup:         1000,
		Command:        "echo hello",
		Delivery:       durable.JetStream,
		Routers:        1,
		Transport:      mesh.TransportNATS,
		Dedup:          true,
		Baselines:      true,
		Burst:          10000,
		Discovery:      true,
		Seed:           true,
		Idle:           10 * time.Second,
		ProfileSeconds: 5,
	}
}

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Count <= 0 {
		c.Count = d.Count
	}
	if c.Duration <= 0 {
		c.Duration = d.Duration
	}
	if c.Concurrency <= 0 {
		c.Concurrency = d.Concurrency
	}
	if c.SingleCount == 0 {
		c.SingleCount = d.SingleCount
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if strings.TrimSpace(c.Command) == "" {
		c.Command = d.Command
	}
	if c.Delivery == "" {
		c.Delivery = d.Delivery
	}
	if c.Routers <= 0 {
		c.Routers = d.Routers
	}
	if c.Transport == "" {
		c.Transport = d.Transport
	}
	if c.Idle == 0 {
		c.Idle = d.Idle
	}
	if c.ProfileSeconds <= 0 {
		c.ProfileSeconds = d.ProfileSeconds
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if err := durable.ValidDelivery(c.Delivery); err != nil {
		return c, fmt.Errorf("bench: %w", err)
	}
	if _, err := parse.Parse([]byte(c.Command), 0); err != nil {
		return c, fmt.Errorf("bench: command: %w", err)
	}
	return c, nil
}

// Report is what a bench run measured.
type Report struct {
	// Started is when the bench began.
	Started time.Time `json:"started"`
	// Host describes the machine.
	Host Host `json:"host"`
	// Setup repeats what was measured.
	Setup Setup `json:"setup"`
	// Runs are the measured runs: the baselines and the mesh (and the
	// mesh the seed's way), each at the configured concurrency and at 1.
	Runs []Result `json:"runs"`
	// Floors are the composite floor (one raw go-micro call and two raw
	// NATS request-replies) at each concurrency; see floor.go.
	Floors []Floor `json:"floors,omitempty"`
	// Idle is each part of the mesh at rest (nil if skipped).
	Idle []Idle `json:"idle,omitempty"`
	// AllInOne is the all-in-one's startup and burst (nil if skipped).
	AllInOne *AllInOne `json:"all_in_one,omitempty"`
	// Discovery is how soon a new command service was usable (nil if
	// skipped).
	Discovery *Discovery `json:"discovery,omitempty"`
	// Profiles lists the CPU profiles written.
	Profiles []string `json:"profiles,omitempty"`
}

// Host describes the machine.
type Host struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

// Setup is the configuration of a report.
type Setup struct {
	Command     string `json:"command"`
	Concurrency int    `json:"concurrency"`
	Delivery    string `json:"delivery"`
	Routers     int    `json:"routers"`
	Transport   string `json:"transport"`
	Dedup       bool   `json:"dedup"`
	// Seed says whether the mesh was measured the seed's way too (run
	// mesh-http).
	Seed bool `json:"seed"`
	// IdleSeconds is the length of the window at rest (0: not measured).
	IdleSeconds float64 `json:"idle_seconds"`
	// RequestBytes and ReplyBytes are the encoded sizes of the mesh's
	// messages, which the NATS baseline sends too.
	RequestBytes int `json:"request_bytes"`
	ReplyBytes   int `json:"reply_bytes"`
}

// Names of the runs.
const (
	// RunNATS is raw NATS request-reply.
	RunNATS = "nats"
	// RunMicro is a raw go-micro Command.Exec call to the echo service.
	RunMicro = "micro"
	// RunMesh is the mesh: gateway → stream → router → go-micro RPC →
	// echo → router → gateway.
	RunMesh = "mesh"
	// RunMeshHTTP is the mesh with the router calling echo over go-micro's
	// default http transport: the seed's way.
	RunMeshHTTP = "mesh-http"
)

func isMesh(name string) bool { return name == RunMesh || name == RunMeshHTTP }

// Result is one measured run.
type Result struct {
	// Name is RunNATS, RunMicro, RunMesh or RunMeshHTTP.
	Name        string  `json:"name"`
	Concurrency int     `json:"concurrency"`
	Commands    int     `json:"commands"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"commands_per_second"`
	Latency     Latency `json:"latency"`
	// CPUPerCommand is the CPU time (user+system) of every process of the
	// mesh during the run, divided by the commands, in microseconds.
	CPUPerCommand float64 `json:"cpu_us_per_command"`
	// CPUByProcess splits CPUPerCommand by process.
	CPUByProcess map[string]float64 `json:"cpu_us_per_command_by_process"`
	// PeakRSS is each process's peak resident memory during the run, in
	// KiB (since it started where the kernel does not allow a reset).
	PeakRSS map[string]int64 `json:"peak_rss_kib"`
	// Vs compares the run with the baselines at the same concurrency:
	// each figure divided by the baseline's.
	Vs map[string]Ratios `json:"vs,omitempty"`
	// VsFloor compares a mesh run with the composite floor at the same
	// concurrency.
	VsFloor *FloorRatios `json:"vs_floor,omitempty"`
	// Unexpected holds a few replies that were errors or not the
	// expected text.
	Unexpected []string `json:"unexpected,omitempty"`
}

// Ratios are a run's figures divided by a baseline's.
type Ratios struct {
	PerSecond     float64 `json:"commands_per_second"`
	P50           float64 `json:"p50"`
	P90           float64 `json:"p90"`
	P99           float64 `json:"p99"`
	Max           float64 `json:"max"`
	CPUPerCommand float64 `json:"cpu_us_per_command"`
	PeakRSS       float64 `json:"peak_rss_total"`
}

// AllInOne is the all-in-one binary fed through its shell input.
type AllInOne struct {
	// ReadyMillis is from the process start to its first pong.
	ReadyMillis float64 `json:"ready_ms"`
	// Burst pings were written at once; all were answered within
	// BurstMillis.
	Burst       int     `json:"burst"`
	BurstMillis float64 `json:"burst_ms"`
	PerSecond   float64 `json:"pings_per_second"`
	// CPUPerCommand is the process's CPU per ping during the burst.
	CPUPerCommand float64 `json:"cpu_us_per_command"`
	PeakRSS       int64   `json:"peak_rss_kib"`
	Errors        int     `json:"errors"`
}

// Discovery is how soon a command service started during the run became
// usable through the mesh.
type Discovery struct {
	Service string `json:"service"`
	// RegisteredMillis is from its process start to its registration
	// (seen on the registry watcher).
	RegisteredMillis float64 `json:"registered_ms"`
	// UsableMillis is from its registration to the first reply that came
	// from it (probes are sent one after another).
	UsableMillis float64 `json:"usable_after_registered_ms"`
}

// bencher holds what the runs share.
type bencher struct {
	cfg   Config
	ps    *procs
	m     *mesh.Mesh
	url   string
	log   *slog.Logger
	gwLog *slog.Logger
	// pids names the processes whose CPU and memory count.
	pids map[string]int
	// pprofs are the profile URLs by process name.
	pprofs map[string]string
	// services are the echo and router processes, as started.
	services []*proc
}

// self names the bench process, which is the mesh's gateway.
const self = "botbench (gateway)"

// Run measures the mesh as cfg says and returns the report. It starts its
// processes in a temporary directory and stops them before it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "botbench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	if cfg.Bin == "" {
		cfg.Bin = filepath.Join(dir, "bin")
		cfg.Log.Info("building the binaries")
		if err := Build(ctx, cfg.Bin); err != nil {
			return nil, err
		}
	}
	rep := &Report{
		Started: time.Now(),
		Host:    Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH},
		Setup: Setup{Command: cfg.Command, Concurrency: cfg.Concurrency, Delivery: cfg.Delivery, Routers: cfg.Routers,
			Transport: cfg.Transport, Dedup: cfg.Dedup, Seed: cfg.Seed && cfg.Transport != mesh.TransportHTTP},
	}
	if cfg.Idle > 0 {
		rep.Setup.IdleSeconds = cfg.Idle.Seconds()
	}
	if err := runMesh(ctx, cfg, dir, rep); err != nil {
		return rep, err
	}
	if cfg.Burst > 0 {
		a, idle, err := runAllInOne(ctx, cfg, dir)
		if err != nil {
			return rep, err
		}
		rep.AllInOne = a
		if idle != nil {
			rep.Idle = append(rep.Idle, *idle)
		}
	}
	return rep, nil
}

// runMesh starts nats-server, the echo service and the routers, measures
// the baselines and the mesh, and stops them.
func runMesh(ctx context.Context, cfg Config, dir string, rep *Report) (err error) {
	ps := &procs{bin: cfg.Bin, dir: dir}
	defer ps.stopAll()
	defer func() {
		if err != nil {
			err = errors.Join(err, ps.failed())
		}
	}()
	b := &bencher{cfg: cfg, ps: ps, log: cfg.Log, pids: map[string]int{self: 0}, pprofs: map[string]string{}}
	gwLog, err := os.Create(filepath.Join(dir, "botbench-gateway.log"))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer gwLog.Close()
	b.gwLog = slog.New(slog.NewTextHandler(gwLog, nil))

	port, err := freePort()
	if err != nil {
		return err
	}
	natsArgs := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "nats")}
	profiling := cfg.ProfileDir != ""
	if profiling {
		pp, err := freePort()
		if err != nil {
			return err
		}
		natsArgs = append(natsArgs, "-profile", strconv.Itoa(pp))
		b.pprofs["nats-server"] = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile", pp)
	}
	p, err := ps.start("nats-server", "nats-server", natsArgs...)
	if err != nil {
		return err
	}
	b.pids["nats-server"] = p.cmd.Process.Pid
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitListening(ctx, addr, 10*time.Second); err != nil {
		return err
	}
	b.url = "nats://" + addr
	if err := b.startServices(cfg.Transport, profiling); err != nil {
		return err
	}

	mcfg := mesh.DefaultConfig()
	mcfg.NATSURL, mcfg.Transport, mcfg.Name, mcfg.ConnectWait = b.url, cfg.Transport, "botbench", 10*time.Second
	if b.m, err = mesh.Connect(ctx, mcfg, mesh.WithLogger(b.gwLog)); err != nil {
		return err
	}
	defer b.m.Close()
	if err := b.ready(ctx); err != nil {
		return err
	}
	if err := b.sizes(ctx, &rep.Setup); err != nil {
		return err
	}
	if cfg.Idle > 0 {
		idle, err := b.idle(ctx)
		if err != nil {
			return err
		}
		rep.Idle = append(rep.Idle, idle...)
	}

	concs := []int{cfg.Concurrency}
	if cfg.SingleCount > 0 && cfg.Concurrency != 1 {
		concs = append(concs, 1)
	}
	for _, c := range concs {
		runs, err := b.runs(ctx, rep, RunMesh, c, cfg.Baselines)
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, runs...)
	}
	if cfg.Discovery {
		d, err := b.discovery(ctx)
		if err != nil {
			return err
		}
		rep.Discovery = d
	}
	if rep.Setup.Seed {
		// The seed's way: the same mesh, the router calling echo over
		// go-micro's http transport.
		b.log.Info("restarting echo and the routers with the http transport")
		b.stopServices()
		if err := b.startServices(mesh.TransportHTTP, false); err != nil {
			return err
		}
		if err := b.ready(ctx); err != nil {
			return err
		}
		for _, c := range concs {
			runs, err := b.runs(ctx, rep, RunMeshHTTP, c, false)
			if err != nil {
				return err
			}
			rep.Runs = append(rep.Runs, runs...)
		}
		// Each concurrency's runs together, in the order measured.
		slices.SortStableFunc(rep.Runs, func(x, y Result) int { return y.Concurrency - x.Concurrency })
	}
	rep.compare()
	if err := ps.failed(); err != nil {
		return err
	}
	return nil
}

// startServices starts the echo service and the routers with the go-micro
// transport tr; with profiling, each serves its profiles.
func (b *bencher) startServices(tr string, profiling bool) error {
	common := []string{"--nats_url", b.url, "--transport", tr}
	withPprof := func(name string, args []string) ([]string, error) {
		if !profiling {
			return args, nil
		}
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		b.pprofs[name] = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile", pp)
		return append(args, "--pprof_address", fmt.Sprintf("127.0.0.1:%d", pp)), nil
	}
	echoArgs, err := withPprof("echo", slices.Clone(common))
	if err != nil {
		return err
	}
	p, err := b.ps.start("echo", "echo", echoArgs...)
	if err != nil {
		return err
	}
	b.services = append(b.services, p)
	b.pids["echo"] = p.cmd.Process.Pid
	for i := range b.cfg.Routers {
		name := "router"
		if b.cfg.Routers > 1 {
			name = fmt.Sprintf("router-%d", i+1)
		}
		// One bench user sends thousands of commands a minute: no rate
		// limits.
		args := append(slices.Clone(common), "--delivery", b.cfg.Delivery, "--rate_user", "0", "--rate_channel", "0")
		if args, err = withPprof(name, args); err != nil {
			return err
		}
		if p, err = b.ps.start(name, "router", args...); err != nil {
			return err
		}
		b.services = append(b.services, p)
		b.pids[name] = p.cmd.Process.Pid
	}
	return nil
}

// stopServices stops the routers and the echo service (the routers first:
// none is left calling an echo that is gone).
func (b *bencher) stopServices() {
	for _, p := range slices.Backward(b.services) {
		b.ps.remove(p)
		delete(b.pids, p.name)
	}
	b.services = nil
}

// ready waits until the routers answer and know the echo service.
func (b *bencher) ready(ctx context.Context) error {
	b.log.Info("waiting for the mesh")
	if err := b.until(ctx, "ping", "pong", 30*time.Second); err != nil {
		return err
	}
	return b.until(ctx, "echo ready", "ready", 30*time.Second)
}

// runs measures the mesh (named name) at concurrency c, after the
// baselines if asked.
func (b *bencher) runs(ctx context.Context, rep *Report, name string, c int, baselines bool) ([]Result, error) {
	count := b.cfg.Count
	if c == 1 && b.cfg.Concurrency != 1 {
		count = b.cfg.SingleCount
	}
	var base []Result
	if baselines {
		b.log.Info("raw NATS request-reply", "concurrency", c, "count", count)
		r, err := b.measure(ctx, RunNATS, c, count, b.natsBaseline(rep.Setup))
		if err != nil {
			return nil, err
		}
		base = append(base, r)
		b.log.Info("raw go-micro Command.Exec", "concurrency", c, "count", count)
		if r, err = b.measure(ctx, RunMicro, c, count, b.microBaseline()); err != nil {
			return nil, err
		}
		base = append(base, r)
	}
	b.log.Info(name, "concurrency", c, "count", count)
	profiling := b.cfg.ProfileDir != "" && name == RunMesh && c == b.cfg.Concurrency
	var stopProfiles func() ([]string, error)
	r, err := b.measure(ctx, name, c, count, func(ctx context.Context, conc, n int, rec *recorder) error {
		if profiling && rec != nil {
			stopProfiles = b.profile(ctx)
		}
		return b.viaGateway(ctx, conc, n, rec)
	})
	if stopProfiles != nil {
		files, perr := stopProfiles()
		rep.Profiles = append(rep.Profiles, files...)
		err = errors.Join(err, perr)
	}
	if err != nil {
		return nil, err
	}
	return append(base, r), nil
}

// driver runs n commands, conc at a time, recording each in rec (nil for
// a warm-up).
type driver func(ctx context.Context, conc, n int, rec *recorder) error

// measure runs warm-up commands, then the measured ones, and reads the
// processes' CPU time and peak memory around the latter.
func (b *bencher) measure(ctx context.Context, name string, conc, n int, run driver) (Result, error) {
	if w := min(b.cfg.Warmup, n); w > 0 {
		if err := run(ctx, conc, w, nil); err != nil {
			return Result{}, fmt.Errorf("bench: %s warm-up: %w", name, err)
		}
	}
	runtime.GC()
	names := make([]string, 0, len(b.pids))
	for n := range b.pids {
		names = append(names, n)
	}
	slices.Sort(names)
	before := map[string]usage{}
	for _, p := range names {
		resetPeak(b.pids[p])
		u, err := cpuOf(b.pids[p])
		if err != nil {
			return Result{}, fmt.Errorf("bench: cpu of %s: %w", p, err)
		}
		before[p] = u
	}
	rec := newRecorder(n)
	start := time.Now()
	err := run(ctx, conc, n, rec)
	took := time.Since(start)
	if err != nil {
		return Result{}, fmt.Errorf("bench: %s: %w", name, err)
	}
	r := Result{Name: name, Concurrency: conc, Seconds: took.Seconds(), CPUByProcess: map[string]float64{}, PeakRSS: map[string]int64{}}
	var cpu usage
	for _, p := range names {
		u, err := cpuOf(b.pids[p])
		if err != nil {
			return Result{}, fmt.Errorf("bench: cpu of %s: %w", p, err)
		}
		cpu += u - before[p]
		r.CPUByProcess[p] = float64(u - before[p])
		if kib, err := peakRSS(b.pids[p]); err == nil {
			r.PeakRSS[p] = kib
		}
	}
	r.Commands, r.Errors, r.Latency, r.Unexpected = rec.summary()
	if r.Commands > 0 {
		r.PerSecond = float64(r.Commands) / took.Seconds()
		r.CPUPerCommand = us(cpu) / float64(r.Commands)
		for p, ns := range r.CPUByProcess {
			r.CPUByProcess[p] = ns / 1e3 / float64(r.Commands)
		}
	}
	b.log.Info("run", "name", name, "concurrency", conc, "commands", r.Commands, "errors", r.Errors, "per_second", int(r.PerSecond), "p50_us", int(r.Latency.P50), "cpu_us", int(r.CPUPerCommand))
	return r, nil
}

func ratios(r, base Result) Ratios {
	var rss, brss int64
	for _, v := range r.PeakRSS {
		rss += v
	}
	for _, v := range base.PeakRSS {
		brss += v
	}
	return Ratios{
		PerSecond:     div(r.PerSecond, base.PerSecond),
		P50:           div(r.Latency.P50, base.Latency.P50),
		P90:           div(r.Latency.P90, base.Latency.P90),
		P99:           div(r.Latency.P99, base.Latency.P99),
		Max:           div(r.Latency.Max, base.Latency.Max),
		CPUPerCommand: div(r.CPUPerCommand, base.CPUPerCommand),
		PeakRSS:       div(float64(rss), float64(brss)),
	}
}

// viaGateway sends n commands through the mesh, from the bench's gateway.
func (b *bencher) viaGateway(ctx context.Context, conc, n int, rec *recorder) error {
	l := newLoad(b.cfg.Command, expected(b.cfg.Command), n, conc, b.cfg.Duration, rec)
	return b.runGateway(ctx, l)
}

// runGateway runs a gateway with the input l until l ends and its replies
// are in.
func (b *bencher) runGateway(ctx context.Context, l *load) error {
	gcfg := gateway.DefaultConfig()
	gcfg.Instance = "botbench-" + strings.ToLower(nuid.Next()[14:])
	gcfg.Delivery = b.cfg.Delivery
	if !b.cfg.Dedup {
		gcfg.DedupWindow = -1
	}
	g, err := gateway.New(b.m.NATS(), []adapter.Input{l}, gcfg, b.gwLog)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Until(l.deadline)+gcfg.ReplyTimeout+15*time.Second)
	defer cancel()
	return g.Run(rctx)
}

// until sends text, one message at a time, until the reply is want or
// within passes.
func (b *bencher) until(ctx context.Context, text, want string, within time.Duration) error {
	for start := time.Now(); time.Since(start) < within; {
		l := newLoad(text, want, 1, 1, 5*time.Second, newRecorder(1))
		if err := b.runGateway(ctx, l); err != nil {
			return err
		}
		if l.last() == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: %q not answered %q within %s", text, want, within)
}

// sizes fills in the encoded sizes of the mesh's request and reply, as the
// gateway and the router make them.
func (b *bencher) sizes(ctx context.Context, s *Setup) error {
	req, rep := b.sampleEvents()
	s.RequestBytes, s.ReplyBytes = proto.Size(req), proto.Size(rep)
	return ctx.Err()
}

// sampleEvents returns a message as the bench's gateway publishes it and
// the reply the router sends to it.
func (b *bencher) sampleEvents() (req, rep *chatopsv1.Event) {
	now := timestamppb.Now()
	req = &chatopsv1.Event{
		Id: nuid.Next(), Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE,
		From: &chatopsv1.Peer{Id: "u12", Name: "u12"}, To: "bench-12", Data: []byte(b.cfg.Command),
		Meta: map[string]string{seqKey: "12345"}, Platform: Platform, Gateway: "botbench-abcdefgh", Time: now,
		ReplyTo: chatopsv1.ReplySubject(Platform, "botbench-abcdefgh", nuid.Next()),
	}
	rep = &chatopsv1.Event{
		Id: nuid.Next(), Type: chatopsv1.EventType_EVENT_TYPE_REPLY,
		From: &chatopsv1.Peer{Id: "botmesh", Name: "botmesh", Bot: true}, To: req.To, Data: []byte(expected(b.cfg.Command)),
		Meta: req.Meta, Platform: req.Platform, Gateway: req.Gateway, Time: now, InReplyTo: req.Id,
	}
	return req, rep
}

// natsBaseline is a raw NATS request-reply with the mesh's message sizes:
// a responder on its own connection answers each request with a reply the
// size of the router's.
func (b *bencher) natsBaseline(s Setup) driver {
	return func(ctx context.Context, conc, n int, rec *recorder) error {
		req, rep := b.sampleEvents()
		reqData, _ := proto.Marshal(req)
		repData, _ := proto.Marshal(rep)
		resp, err := nats.Connect(b.url, nats.Name("botbench-responder"))
		if err != nil {
			return err
		}
		defer resp.Close()
		subject := "botbench.echo." + nuid.Next()
		if _, err := resp.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(repData) }); err != nil {
			return err
		}
		if err := resp.Flush(); err != nil {
			return err
		}
		nc, err := nats.Connect(b.url, nats.Name("botbench-requester"))
		if err != nil {
			return err
		}
		defer nc.Close()
		drive(ctx, conc, n, b.cfg.Duration, rec, func(context.Context) error {
			m, err := nc.Request(subject, reqData, 10*time.Second)
			if err == nil && len(m.Data) != len(repData) {
				err = fmt.Errorf("reply of %d bytes", len(m.Data))
			}
			return err
		})
		return nil
	}
}

// microBaseline calls the echo service's Command.Exec with go-micro, as
// the router does but without it.
func (b *bencher) microBaseline() driver {
	return func(ctx context.Context, conc, n int, rec *recorder) error {
		msg, _ := parse.Parse([]byte(b.cfg.Command), 0)
		want := expected(b.cfg.Command)
		cl := b.m.NewClient(client.RequestTimeout(10 * time.Second))
		service := b.m.ServiceName(strings.ToLower(msg.Words[0]))
		drive(ctx, conc, n, b.cfg.Duration, rec, func(ctx context.Context) error {
			req := &chatopsv1.ExecRequest{
				Args: msg.Words, Text: msg.Text, Command: strings.ToLower(msg.Words[0]),
				Caller:       &chatopsv1.Peer{Id: "u12", Name: "u12"},
				Conversation: &chatopsv1.Conversation{Platform: Platform, Channel: "bench-12", Gateway: "botbench", EventId: nuid.Next()},
			}
			rsp := &chatopsv1.ExecResponse{}
			if err := cl.Call(ctx, cl.NewRequest(service, "Command.Exec", req), rsp); err != nil {
				return err
			}
			if rsp.GetError() != "" {
				return errors.New(rsp.GetError())
			}
			if want != "" && string(rsp.GetResult()) != want {
				return fmt.Errorf("result %q", rsp.GetResult())
			}
			return nil
		})
		return nil
	}
}

// drive calls call n times, conc at a time, for at most within.
func drive(ctx context.Context, conc, n int, within time.Duration, rec *recorder, call func(context.Context) error) {
	deadline := time.Now().Add(within)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil && time.Now().Before(deadline) {
				start := time.Now()
				err := call(ctx)
				d := time.Since(start)
				if err != nil {
					rec.fail(d, err.Error())
					continue
				}
				rec.ok(d)
			}
		})
	}
	wg.Wait()
}

// profile starts CPU profiles of every process; the returned func waits for
// them and writes them to the profile directory.
func (b *bencher) profile(ctx context.Context) func() ([]string, error) {
	secs := b.cfg.ProfileSeconds
	if err := os.MkdirAll(b.cfg.ProfileDir, 0o755); err != nil {
		return func() ([]string, error) { return nil, err }
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		files []string
		errs  []error
	)
	for name, u := range b.pprofs {
		wg.Go(func() {
			file := filepath.Join(b.cfg.ProfileDir, name+".pprof")
			err := fetch(ctx, fmt.Sprintf("%s?seconds=%d", u, secs), file)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("profile of %s: %w", name, err))
				return
			}
			files = append(files, file)
		})
	}
	selfFile := filepath.Join(b.cfg.ProfileDir, "botbench.pprof")
	f, err := os.Create(selfFile)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	selfErr := err
	if selfErr == nil {
		wg.Go(func() {
			select {
			case <-time.After(time.Duration(secs) * time.Second):
			case <-ctx.Done():
			}
			pprof.StopCPUProfile()
			f.Close()
			mu.Lock()
			files = append(files, selfFile)
			mu.Unlock()
		})
	}
	return func() ([]string, error) {
		wg.Wait()
		slices.Sort(files)
		return files, errors.Join(append(errs, selfErr)...)
	}
}

func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, rsp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rsp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// discovery starts the query service (commands query and health) and
// times its registration and the first reply from it through the mesh.
func (b *bencher) discovery(ctx context.Context) (*Discovery, error) {
	const service = "query"
	full := b.m.ServiceName(service)
	w, err := b.m.Registry().Watch(registry.WatchService(full))
	if err != nil {
		return nil, fmt.Errorf("bench: watch the registry: %w", err)
	}
	registered := make(chan time.Time, 1)
	go func() {
		for {
			r, err := w.Next()
			if err != nil {
				return
			}
			if r.Service != nil && r.Service.Name == full && r.Action != "delete" {
				select {
				case registered <- time.Now():
				default:
				}
			}
		}
	}()
	defer w.Stop()
	started := time.Now()
	if _, err := b.ps.start(service, service, "--nats_url", b.url, "--transport", b.cfg.Transport); err != nil {
		return nil, err
	}
	var reg time.Time
	select {
	case reg = <-registered:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("bench: %s not registered 30s after its start", full)
	}
	// Probe with "query" until the reply is not "unknown command" (which
	// quotes the message).
	unknown := `unknown command "` + service
	rec := newRecorder(1000)
	l := newLoad("query nosuchservice Nothing.Here {}", "", 100000, 1, 30*time.Second, rec)
	var usable atomic.Int64
	l.stopOn = func(ev *chatopsv1.Event) bool {
		if strings.HasPrefix(string(ev.GetData()), unknown) {
			return false
		}
		usable.Store(int64(time.Since(reg)))
		return true
	}
	if err := b.runGateway(ctx, l); err != nil {
		return nil, err
	}
	if usable.Load() == 0 {
		return nil, fmt.Errorf("bench: %s not usable within 30s; last reply %q", service, l.last())
	}
	return &Discovery{
		Service:          full,
		RegisteredMillis: float64(reg.Sub(started).Microseconds()) / 1e3,
		UsableMillis:     float64(usable.Load()) / 1e6,
	}, nil
}
