package peerbench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// buildBotmesh builds the all-in-one into a temporary directory.
func buildBotmesh(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "github.com/botmesh/botmesh/cmd/botmesh").CombinedOutput()
	if err != nil {
		t.Fatalf("go build botmesh: %v\n%s", err, out)
	}
	return dir
}

// shortConfig is a run of a few seconds per bot.
func shortConfig(bin string) Config {
	cfg := DefaultConfig()
	cfg.Bin = bin
	cfg.Users = 3
	cfg.Rounds = 2
	cfg.Warmup = 1
	cfg.Single = 6
	cfg.Duration = 1500 * time.Millisecond
	cfg.Slow = 500 * time.Millisecond
	cfg.Idle = 300 * time.Millisecond
	cfg.StartTimeout = 60 * time.Second
	return cfg
}

// Both bots run through one real Prosody, in the reverse order in the
// second round, every command is answered, and the report shows both
// with their ratios. Errbot must be installed (tools/debian-deps.sh):
// without it the test would not test the peer.
func TestRunSideBySide(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody, the all-in-one and Errbot")
	}
	if why := errbotMissing(t.Context(), DefaultConfig().Python); why != "" {
		t.Fatal(why)
	}
	cfg := shortConfig(buildBotmesh(t))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Bots, []string{Botmesh, Errbot}) || rep.ErrbotMissing != "" {
		t.Fatalf("bots %q, missing %q", rep.Bots, rep.ErrbotMissing)
	}
	var order []string
	for _, r := range rep.Runs {
		order = append(order, r.Bot)
		f := r.Figures
		if f.Single.Commands != cfg.Single {
			t.Errorf("%s round %d: %d commands one at a time, want %d", r.Bot, r.Round, f.Single.Commands, cfg.Single)
		}
		if f.Parallel.Commands < cfg.Users || f.SlowMix.Commands < 1 || f.SlowMix.Slow < 1 {
			t.Errorf("%s round %d: %d commands in flight, %d beside %d slow ones", r.Bot, r.Round, f.Parallel.Commands, f.SlowMix.Commands, f.SlowMix.Slow)
		}
		if f.Single.Latency.P50 <= 0 || f.Parallel.PerSecond <= 0 || f.Parallel.ServerCPUPerCommand <= 0 || f.PeakRSS <= 0 {
			t.Errorf("%s round %d: figures missing: %+v", r.Bot, r.Round, f)
		}
		if f.SlowMix.Slow > 0 && r.Bot == Errbot && f.SlowMix.Latency.Max < us(cfg.Slow)/2 {
			// BOT_ASYNC = False runs one command at a time: an echo
			// sent during a slow command waits for its end (the first
			// one sent after it started, nearly all of it; an echo alone
			// takes milliseconds, and half leaves room for a loaded
			// machine).
			t.Errorf("Errbot round %d: no echo waited behind a slow command (longest %.0f µs)", r.Round, f.SlowMix.Latency.Max)
		}
	}
	if want := []string{Botmesh, Errbot, Errbot, Botmesh}; !slices.Equal(order, want) {
		t.Errorf("runs in the order %q, want %q", order, want)
	}
	if len(rep.Ratios) == 0 {
		t.Error("no ratios")
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| botmesh | Errbot | botmesh ÷ Errbot |", "one at a time, p50", "BOT_ASYNC = False"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Medians[Errbot].Single.Latency.P50 != rep.Medians[Errbot].Single.Latency.P50 || len(back.Runs) != 4 {
		t.Errorf("the JSON does not hold the report: %s", js.String())
	}
}

func us(d time.Duration) float64 { return float64(d.Microseconds()) }

// Without Errbot the bench says so, and why, and how to install it.
func TestErrbotMissing(t *testing.T) {
	why := errbotMissing(t.Context(), filepath.Join(t.TempDir(), "python3"))
	for _, want := range []string{"Errbot was not found", "apt-get install errbot python3-slixmpp"} {
		if !strings.Contains(why, want) {
			t.Errorf("%q lacks %q", why, want)
		}
	}
	if why := errbotMissing(t.Context(), "/bin/false"); why == "" {
		t.Error("a Python that fails counts as having Errbot")
	}
}

// Without Prosody the bench stops at once and names the package.
func TestProsodyMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	cfg := shortConfig(t.TempDir())
	cfg.NoErrbot = true
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "apt-get install prosody") {
		t.Fatalf("Run without prosody: %v", err)
	}
}

// Bad settings are refused with a sentence naming the flag.
func TestConfigValidate(t *testing.T) {
	good := shortConfig("bin")
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no bin", func(c *Config) { c.Bin = "" }, "--bin"},
		{"no users", func(c *Config) { c.Users = 0 }, "--users"},
		{"no rounds", func(c *Config) { c.Rounds = 0 }, "--rounds"},
		{"phase shorter than slow", func(c *Config) { c.Duration = c.Slow }, "longer than --slow"},
		{"no idle", func(c *Config) { c.Idle = 0 }, "--idle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want it to name %q", err, tc.want)
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
}

func figures(p50, rate, idle float64) Figures {
	var f Figures
	f.Single.Latency.P50 = p50
	f.Parallel.PerSecond = rate
	f.IdleCPU = idle
	return f
}

// The table shows the medians of the rounds and botmesh ÷ Errbot.
func TestReportText(t *testing.T) {
	rep := &Report{Date: "2026-12-06", Users: 10, Rounds: 3, Bots: []string{Botmesh, Errbot}, Runs: []BotRun{
		{1, Botmesh, figures(1000, 3000, 0.4)}, {1, Errbot, figures(800, 2000, 0)},
		{2, Errbot, figures(900, 2200, 0)}, {2, Botmesh, figures(500, 2600, 0.2)},
		{3, Botmesh, figures(700, 2700, 9)}, {3, Errbot, figures(9000, 100, 0)},
	}}
	rep.summarise()
	if m := rep.Medians[Botmesh]; m.Single.Latency.P50 != 700 || m.Parallel.PerSecond != 2700 || m.IdleCPU != 0.4 {
		t.Errorf("botmesh medians %+v", m)
	}
	if r := rep.Ratios["single_p50"]; r != 700.0/900 {
		t.Errorf("p50 ratio %v", r)
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| one at a time, p50 | ms | 0.70 | 0.90 | 0.78 | lower |",
		"| users in flight, commands/s |  | 2700 | 2000 | 1.35 | higher |",
		"| idle, bot CPU | ms/s | 0.40 | 0.00 | — | lower |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}

	alone := &Report{Bots: []string{Botmesh}, ErrbotMissing: "Errbot was not found (…)", Runs: []BotRun{{1, Botmesh, figures(1000, 3000, 0.4)}}}
	alone.summarise()
	b.Reset()
	if err := alone.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| one at a time, p50 | ms | 1.00 |\n") || !strings.Contains(b.String(), "Errbot was not found (…): botmesh alone was measured.") || strings.Contains(b.String(), "÷") {
		t.Errorf("table of botmesh alone:\n%s", b.String())
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The harness turns a helper's failure into an error, runs cleanups in
// reverse, and removes its directories at close.
func TestHarness(t *testing.T) {
	h := newHarness(t.TempDir())
	var order []int
	h.Cleanup(func() { order = append(order, 1) })
	h.Cleanup(func() { order = append(order, 2); h.Fatalf("cleanup %d failed", 2) })
	d := h.TempDir()
	err := catch(func() {
		h.Fatalf("prosody: %s", "gone")
		t.Error("Fatalf returned")
	})
	if err == nil || err.Error() != "prosody: gone" {
		t.Errorf("catch: %v", err)
	}
	if err := catch(func() { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Error("catch let a panic through as nil")
	}
	h.Errorf("recorded %d", 1)
	if !h.Failed() {
		t.Error("Failed after Errorf")
	}
	err = h.close()
	if err == nil || !strings.Contains(err.Error(), "recorded 1") || !strings.Contains(err.Error(), "cleanup 2 failed") {
		t.Errorf("close: %v", err)
	}
	if !slices.Equal(order, []int{2, 1}) {
		t.Errorf("cleanups ran in the order %v", order)
	}
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Errorf("TempDir %s still there: %v", d, err)
	}
}

func TestParseSchedstat(t *testing.T) {
	if d, err := parseSchedstat([]byte("143119 1591053 2\n")); err != nil || d != 143119 {
		t.Errorf("parseSchedstat: %v, %v", d, err)
	}
	for _, bad := range []string{"", "1 2", "x 1 2", "-5 1 2"} {
		if _, err := parseSchedstat([]byte(bad)); err == nil {
			t.Errorf("parseSchedstat(%q) took it", bad)
		}
	}
	if d, err := threadsCPU(os.Getpid()); err != nil || d <= 0 {
		t.Errorf("threadsCPU(self): %v, %v", d, err)
	}
}

// The driver fails a phase, with a sentence that says why, when the bot
// answers something else, answers nothing within the reply timeout, or
// exits; it never waits unbounded.
func TestDriverFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody")
	}
	h := newHarness(t.TempDir())
	t.Cleanup(func() {
		if err := h.close(); err != nil {
			t.Log(err)
		}
	})
	srv, users, err := startServer(h, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := shortConfig("bin")
	d := &driver{h: h, users: users, cfg: cfg}

	// A fake bot: a process to measure, and an XMPP session that answers
	// every message with reply (none while reply is empty).
	dir := t.TempDir()
	b, err := start("fake", "errbot", dir, "/bin/sh", "-c", "echo fake bot started; exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.stop)
	var (
		reply atomic.Value
		done  = make(chan struct{})
	)
	reply.Store("wrong")
	fake := loginFake(t, h, srv)
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			m, ok := fake.next(100 * time.Millisecond)
			if text := reply.Load().(string); ok && text != "" {
				fake.say(m.From.String(), text)
			}
		}
	}()
	t.Cleanup(func() { close(done) })

	d.cfg.ReplyTimeout = 10 * time.Second
	_, err = d.phase(t.Context(), b, 1, 0, false)
	if err == nil || !strings.Contains(err.Error(), `replied "wrong" instead of "user0-`) {
		t.Errorf("a wrong reply: %v", err)
	}
	reply.Store("")
	d.cfg.ReplyTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err = d.phase(t.Context(), b, 1, 0, false)
	if err == nil || !strings.Contains(err.Error(), "no reply to \"echo user0-") || !strings.Contains(err.Error(), "within 300ms") {
		t.Errorf("no reply: %v", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("waited %s for a reply that never came", waited)
	}
	b.stop()
	_, err = d.phase(t.Context(), b, 1, 0, false)
	if err == nil || !strings.Contains(err.Error(), "fake exited") || !strings.Contains(err.Error(), "fake bot started") {
		t.Errorf("a bot that exited: %v", err)
	}
}
