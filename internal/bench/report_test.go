package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func run(name string, conc int, perSecond, p50, cpu float64) Result {
	return Result{
		Name: name, Concurrency: conc, Commands: 1000, PerSecond: perSecond, CPUPerCommand: cpu,
		Latency:      Latency{P50: p50, P90: 2 * p50, P99: 3 * p50, Max: 4 * p50},
		CPUByProcess: map[string]float64{"router": cpu / 2, "echo": cpu / 2},
		PeakRSS:      map[string]int64{"router": 30 << 10, "echo": 20 << 10},
	}
}

// sample is a report as botbench writes it with the baselines, the seed's
// run, the parts at rest and the all-in-one.
func sample() *Report {
	r := &Report{
		Setup: Setup{Command: "echo hello", Concurrency: 64, Delivery: "jetstream", Routers: 1, Transport: "nats", Dedup: true, Seed: true, IdleSeconds: 2},
		Runs: []Result{
			run(RunNATS, 64, 50000, 100, 20),
			run(RunMicro, 64, 20000, 300, 80),
			run(RunMesh, 64, 8000, 900, 240),
			run(RunMeshHTTP, 64, 2000, 3000, 800),
			run(RunNATS, 1, 5000, 180, 200),
			run(RunMicro, 1, 2500, 330, 400),
			run(RunMesh, 1, 800, 1100, 1600),
			run(RunMeshHTTP, 1, 400, 2000, 2500),
		},
		AllInOne: &AllInOne{ReadyMillis: 250, Burst: 1000, BurstMillis: 100, PerSecond: 10000, CPUPerCommand: 70, PeakRSS: 70 << 10},
	}
	for _, p := range []string{IdleEcho, IdleGateway, IdleNATS, IdleRouter, IdleAllInOne} {
		r.Idle = append(r.Idle, Idle{Process: p, RSS: 29 << 10, RSSAnon: 5 << 10, CPUMillisPerSecond: 0.5, Seconds: 2})
	}
	r.compare()
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestFloor(t *testing.T) {
	f, ok := floorOf(run(RunNATS, 64, 50000, 100, 20), run(RunMicro, 64, 20000, 300, 80))
	if !ok {
		t.Fatal("no floor from two baselines")
	}
	// 1 / (1/20000 + 2/50000) = 1 / 0.00009
	if want := 1 / 0.00009; !near(f.PerSecond, want) {
		t.Errorf("floor throughput %v, want %v", f.PerSecond, want)
	}
	if f.CPUPerCommand != 120 || f.P50 != 500 || f.Concurrency != 64 {
		t.Errorf("floor %+v, want CPU 80+2×20 = 120 µs, p50 300+2×100 = 500 µs at concurrency 64", f)
	}
	for _, tc := range []struct {
		name        string
		nats, micro Result
	}{
		{"no nats run", Result{}, run(RunMicro, 64, 20000, 300, 80)},
		{"no micro run", run(RunNATS, 64, 50000, 100, 20), Result{}},
		{"different concurrency", run(RunNATS, 1, 50000, 100, 20), run(RunMicro, 64, 20000, 300, 80)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if f, ok := floorOf(tc.nats, tc.micro); ok {
				t.Errorf("floor %+v from %+v and %+v", f, tc.nats, tc.micro)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	r := sample()
	if len(r.Floors) != 2 {
		t.Fatalf("floors %+v, want one at 64 and one at 1", r.Floors)
	}
	for _, run := range r.Runs {
		switch run.Name {
		case RunNATS, RunMicro:
			if run.VsFloor != nil || run.Vs != nil {
				t.Errorf("baseline %s at %d compared with itself: %+v %+v", run.Name, run.Concurrency, run.Vs, run.VsFloor)
			}
			continue
		}
		f := r.floor(run.Concurrency)
		v := run.VsFloor
		if v == nil {
			t.Fatalf("%s at %d: no ratios to the floor", run.Name, run.Concurrency)
		}
		if !near(v.CPUPerCommand, run.CPUPerCommand/f.CPUPerCommand) || !near(v.PerSecond, run.PerSecond/f.PerSecond) || !near(v.P50, run.Latency.P50/f.P50) {
			t.Errorf("%s at %d: ratios %+v to floor %+v", run.Name, run.Concurrency, v, f)
		}
		if len(run.Vs) != 2 {
			t.Errorf("%s at %d: ratios to the baselines %v, want nats and micro", run.Name, run.Concurrency, run.Vs)
		}
	}
	mesh := r.Runs[slices.IndexFunc(r.Runs, func(x Result) bool { return x.Name == RunMesh && x.Concurrency == 64 })]
	// 240 µs against 120: twice the floor's CPU; 8000/s against 11,111/s.
	if !near(mesh.VsFloor.CPUPerCommand, 2) || !near(mesh.VsFloor.PerSecond, 0.72) {
		t.Errorf("mesh ÷ floor %+v, want CPU 2 and throughput 0.72", mesh.VsFloor)
	}
}

func TestCompareWithoutBaselines(t *testing.T) {
	r := &Report{Runs: []Result{run(RunMesh, 64, 8000, 900, 240)}}
	r.compare()
	if len(r.Floors) != 0 || r.Runs[0].VsFloor != nil || r.Runs[0].Vs != nil {
		t.Errorf("ratios without baselines: %+v %+v", r.Floors, r.Runs[0])
	}
}

// TestJSONFields holds the JSON field names that tracking scripts read
// (BENCHMARKS.md documents them): renaming one fails here.
func TestJSONFields(t *testing.T) {
	var buf bytes.Buffer
	if err := sample().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string {
		m, _ := v.(map[string]any)
		return sortedKeys(m)
	}
	first := func(v any) any {
		l, _ := v.([]any)
		if len(l) == 0 {
			return nil
		}
		return l[0]
	}
	runs, _ := doc["runs"].([]any)
	var mesh any
	for _, r := range runs {
		if r.(map[string]any)["name"] == RunMesh {
			mesh = r
			break
		}
	}
	for _, tc := range []struct {
		what string
		got  []string
		want []string
	}{
		{"report", keys(doc), []string{"all_in_one", "floors", "host", "idle", "runs", "setup", "started"}},
		{"setup", keys(doc["setup"]), []string{"command", "concurrency", "dedup", "delivery", "idle_seconds", "reply_bytes", "request_bytes", "routers", "seed", "transport"}},
		{"floors[0]", keys(first(doc["floors"])), []string{"commands_per_second", "concurrency", "cpu_us_per_command", "p50_us"}},
		{"idle[0]", keys(first(doc["idle"])), []string{"cpu_ms_per_second", "process", "rss_anon_kib", "rss_kib", "seconds"}},
		{"mesh run", keys(mesh), []string{"commands", "commands_per_second", "concurrency", "cpu_us_per_command", "cpu_us_per_command_by_process", "errors", "latency", "name", "peak_rss_kib", "seconds", "vs", "vs_floor"}},
		{"mesh vs_floor", keys(mesh.(map[string]any)["vs_floor"]), []string{"commands_per_second", "cpu_us_per_command", "p50"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s: JSON fields %q, want %q", tc.what, tc.got, tc.want)
		}
	}
}

func TestReadReportRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	want := sample()
	if err := want.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "bench.json")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Check(); err != nil {
		t.Errorf("a complete report read back: %v", err)
	}
	if len(got.Floors) != 2 || got.Floors[0] != want.Floors[0] || len(got.Idle) != len(want.Idle) {
		t.Errorf("read back %+v %+v, wrote %+v %+v", got.Floors, got.Idle, want.Floors, want.Idle)
	}
}

func TestCheck(t *testing.T) {
	if err := sample().Check(); err != nil {
		t.Fatalf("complete report: %v", err)
	}
	for _, tc := range []struct {
		name  string
		spoil func(*Report)
		want  string
	}{
		{"no floors", func(r *Report) { r.Floors = nil }, "floor at concurrency 64"},
		{"no ratio to the floor", func(r *Report) { r.Runs[2].VsFloor = nil }, "vs_floor of run mesh at concurrency 64"},
		{"no seed run", func(r *Report) {
			r.Runs = slices.DeleteFunc(r.Runs, func(x Result) bool { return x.Name == RunMeshHTTP && x.Concurrency == 1 })
		}, "run mesh-http at concurrency 1"},
		{"no gateway at rest", func(r *Report) {
			r.Idle = slices.DeleteFunc(r.Idle, func(i Idle) bool { return i.Process == IdleGateway })
		}, "idle figures of gateway"},
		{"no all-in-one at rest", func(r *Report) { r.Idle = r.Idle[:len(r.Idle)-1] }, "idle figures of " + IdleAllInOne},
		{"no mesh", func(r *Report) { r.Runs = r.Runs[:2] }, "run mesh"},
		{"an empty run", func(r *Report) { r.Runs[3].Commands = 0 }, "commands of run mesh-http at concurrency 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sample()
			tc.spoil(r)
			err := r.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check() = %v, want it to name %q", err, tc.want)
			}
		})
	}
	t.Run("not asked for", func(t *testing.T) {
		r := sample()
		r.Setup.Seed, r.Setup.IdleSeconds, r.Idle = false, 0, nil
		r.Runs = slices.DeleteFunc(r.Runs, func(x Result) bool { return x.Name == RunMeshHTTP })
		if err := r.Check(); err != nil {
			t.Errorf("a report without the seed's run and rest, not asked for: %v", err)
		}
	})
	t.Run("several routers", func(t *testing.T) {
		r := sample()
		for i := range r.Idle {
			if r.Idle[i].Process == IdleRouter {
				r.Idle[i].Process = "router-1"
			}
		}
		if err := r.Check(); err != nil {
			t.Errorf("router-1 at rest: %v", err)
		}
	})
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	if err := sample().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"\n      floor    64         -       -   11111     500       -       -       -       120.0             -\n",
		"\n    × floor                            0.72    1.80       -       -       -        2.00             -\n",
		"mesh ÷ floor at concurrency 64: CPU 2.00 (target ≤ 1.3: not reached), throughput 0.72 (target ≥ 0.8: not reached), p50 1.80\n",
		"mesh-http ÷ floor at concurrency 64:",
		"mesh-http: the same mesh, the router calling echo over go-micro's http transport (the seed's way)\n",
		"floor = one raw go-micro call + two raw NATS request-replies",
		IdleAllInOne,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	var gw string
	for l := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == IdleGateway {
			gw = strings.Join(f, " ")
		}
	}
	if want := "gateway 29.0 5.0 0.50 target ≤ 20 MiB: not reached"; gw != want {
		t.Errorf("gateway at rest: %q, want %q:\n%s", gw, want, out)
	}
	// The floor row comes before the first mesh row of its concurrency,
	// once.
	if n := strings.Count(out, "      floor "); n != 2 {
		t.Errorf("%d floor rows, want 2:\n%s", n, out)
	}
	if i, j := strings.Index(out, "      floor    64"), strings.Index(out, "       mesh    64"); i < 0 || j < i {
		t.Errorf("the floor row is not before the mesh's:\n%s", out)
	}
}

func TestParseSched(t *testing.T) {
	text := "router (12, #threads: 9)\n----\nse.exec_start                                :        664162.795652\nse.vruntime                                  :         51884.049482\nse.sum_exec_runtime                          :            12.496615\nnr_switches                                  :                    6\n"
	d, ok := parseSched([]byte(text))
	if !ok || d != 12496615*time.Nanosecond {
		t.Errorf("parseSched = %v, %v; want 12.496615ms", d, ok)
	}
	for _, bad := range []string{"", "se.sum_exec_runtime\n", "se.sum_exec_runtime : lots\n", "se.sum_exec_runtime : -1\n"} {
		if d, ok := parseSched([]byte(bad)); ok {
			t.Errorf("parseSched(%q) = %v", bad, d)
		}
	}
}

// TestMeasureIdle measures this process, busy, then at rest: the CPU it
// reports follows the CPU the kernel gives it.
func TestMeasureIdle(t *testing.T) {
	pid := os.Getpid()
	before, err := preciseCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until getrusage says 50 ms of CPU went by (at most 5 s).
	self := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start, deadline := self(), time.Now().Add(5*time.Second)
	x := 0
	for self()-start < 50*time.Millisecond && time.Now().Before(deadline) {
		for i := range 100000 {
			x += i
		}
	}
	after, err := preciseCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if got := after - before; got < 40*time.Millisecond {
		t.Errorf("50 ms of spinning measured as %v (x=%d)", got, x)
	}

	m, err := measureIdle(t.Context(), map[string]int{"self": pid}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || m[0].Process != "self" || m[0].RSS <= 0 || m[0].RSSAnon <= 0 || m[0].RSSAnon > m[0].RSS || m[0].Seconds < 0.3 {
		t.Fatalf("at rest: %+v", m)
	}
	// At rest a test binary uses next to nothing: well under 100 ms/s.
	if m[0].CPUMillisPerSecond < 0 || m[0].CPUMillisPerSecond > 100 {
		t.Errorf("at rest: %.2f ms CPU per second", m[0].CPUMillisPerSecond)
	}
}
