package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
)

// seedBinary builds the Micro Bot blog's command service
// (e2e/testdata/seed: plain go-micro, its own copy of the seed proto, no
// botmesh import) once per test run.
var seedBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "botmesh-e2e-seed-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "seed")
	cmd := exec.Command("go", "build", "-o", out, "github.com/botmesh/botmesh/e2e/testdata/seed")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build seed: %v\n%s", err, b)
	}
	return out, nil
})

// startSeed runs the seed service with args (go-micro's own flags); it is
// killed at the end of the test if still running.
func startSeed(t *testing.T, args ...string) *proc {
	t.Helper()
	path, err := seedBinary()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: "seed", cmd: exec.Command(path, args...), stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start seed: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- output of the seed service:\n%s", p.stderr.String())
		}
	})
	return p
}

// seedLine is how help lists the seed service: its Help answer, as the
// Micro Bot listed it.
const seedLine = "command - This is an example bot command as a micro service"

// seedSuite drives the seed service through botmesh as a chat user does,
// and logs the transcript: help lists it in the seed's form, Exec works,
// rsp.Error and a handler error reach the user as sentences, health shows
// where the node is (no health endpoint: go-micro v4 does not mount one),
// and once the service stops it leaves help.
func seedSuite(t *testing.T, in *adaptertest.Input, seed *proc) {
	var transcript strings.Builder
	say := func(text string, r reply) {
		fmt.Fprintf(&transcript, "> %s\n%s\n", text, r.text)
	}
	listed := func(r reply) bool { return slices.Contains(strings.Split(r.text, "\n"), seedLine) }
	help := eventually(t, in, "help", listed)
	say("help", help)
	for _, tc := range []struct {
		text, want string
		isErr      bool
	}{
		{"command hello from 2016", "command hello from 2016", false},
		{"command fail", "command: there is nothing to fail here", true},
		{"command crash", "command: go.micro.bot.command failed: the command crashed", true},
	} {
		r := chat(t, in, tc.text)
		say(tc.text, r)
		if r.text != tc.want || r.isErr != tc.isErr {
			t.Errorf("%s: %q (error: %v), want %q (error: %v)", tc.text, r.text, r.isErr, tc.want, tc.isErr)
		}
	}
	wantHealth := regexp.MustCompile(`^go\.micro\.bot\.command: its node is not healthy\n` +
		`• go\.micro\.bot\.command-[0-9a-f-]{36}: no health endpoint \([^)]+\)\n` +
		`  the node runs but does not serve Debug\.Health \(a go-micro v4 service must register go-micro's debug handler; botmesh command services do\)\n` +
		`  address: \S+:\d+ \(http\)$`)
	// Asked again if a loaded machine made the node miss the health
	// timeout (3s).
	health := eventually(t, in, "health go.micro.bot.command", func(r reply) bool { return wantHealth.MatchString(r.text) })
	say("health go.micro.bot.command", health)

	if err := seed.stop(t, syscall.SIGTERM, 15*time.Second); err != nil {
		t.Errorf("seed service after SIGTERM: %v", err)
	}
	gone := eventually(t, in, "help", func(r reply) bool { return !listed(r) && !strings.Contains(r.text, "This is an example bot command") })
	say("help  (after the service stopped)", gone)
	t.Logf("transcript:\n%s", transcript.String())
}

// The Micro Bot blog's command service, with go-micro's default http
// transport and only the registry chosen (go-micro's nats registry, its
// own flags), against a default botmesh (nats registry, NATS transport):
// botmesh calls it over http, as its registration says.
func TestSeedExampleNATSRegistry(t *testing.T) {
	in, url := startMeshWith(t, nil)
	seed := startSeed(t, "--registry", "nats", "--registry_address", url)
	seedSuite(t, in, seed)
}
