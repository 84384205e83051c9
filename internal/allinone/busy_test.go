package allinone

import (
	"context"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/internal/ptytest"
)

// Issue 13: a port that is taken stops the all-in-one before it says it is
// ready, with one sentence naming what could not listen where and the flag
// (and its variable) that moves it. Main runs as `go run ./cmd/botmesh`
// does on a terminal (stdin is a pseudo-terminal): that is when it prints
// "botmesh is ready" and serves the web chat.
func TestMainBusyPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(addr, port string) []string
		want func(addr, port string) []string
	}{
		{
			"web",
			func(addr, _ string) []string { return []string{"--web_address", addr} },
			func(addr, _ string) []string {
				return []string{"the web chat cannot listen on " + addr + ": the address is in use", "set --web_address (or BOTMESH_WEB_ADDRESS)"}
			},
		},
		{
			"admin",
			func(addr, _ string) []string {
				return []string{"--admin_address", addr, "--web_address", "127.0.0.1:0"}
			},
			func(addr, _ string) []string {
				return []string{"the admin server (/healthz, /metrics) cannot listen on " + addr + ": the address is in use", "set --admin_address (or BOTMESH_ADMIN_ADDRESS)"}
			},
		},
		{
			"pprof",
			func(addr, _ string) []string {
				return []string{"--pprof_address", addr, "--web_address", "127.0.0.1:0"}
			},
			func(addr, _ string) []string {
				return []string{"the profiles server (/debug/pprof) cannot listen on " + addr + ": the address is in use", "set --pprof_address (or BOTMESH_PPROF_ADDRESS)"}
			},
		},
		{
			"nats",
			func(_, port string) []string {
				return []string{"--nats_host", "127.0.0.1", "--nats_port", port, "--web_address", "127.0.0.1:0"}
			},
			func(addr, _ string) []string {
				return []string{"the embedded NATS server cannot listen on " + addr + ": the address is in use", "set --nats_port (or BOTMESH_NATS_PORT)"}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			addr := busy.Addr().String()
			_, port, _ := net.SplitHostPort(addr)

			args := append([]string{"--creds_file", filepath.Join(t.TempDir(), "allinone.creds"), "--data_dir", t.TempDir(), "--no_demo"}, tc.args(addr, port)...)
			var stdout, stderr meshtest.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			began := time.Now()
			err = Main(ctx, args, terminal(t), &stdout, &stderr)
			took := time.Since(began)
			if err == nil {
				t.Fatalf("botmesh %s: no error with %s taken; stderr:\n%s", strings.Join(args, " "), addr, stderr.String())
			}
			// What the user sees: cmd/botmesh prints the error last.
			seen := stderr.String() + "botmesh: " + err.Error() + "\n"
			t.Logf("botmesh %s (failed after %s):\n%s", strings.Join(args, " "), took.Round(time.Millisecond), seen)
			if readyWord.MatchString(seen) {
				t.Errorf("botmesh said it was ready although %s is taken", addr)
			}
			for _, w := range tc.want(addr, port) {
				if !strings.Contains(seen, w) {
					t.Errorf("the output does not say %q", w)
				}
			}
			if took > 10*time.Second {
				t.Errorf("botmesh took %s to say that %s is taken", took.Round(time.Millisecond), addr)
			}
		})
	}
}

// readyWord finds the word ready ("already" is not it).
var readyWord = regexp.MustCompile(`\bready\b`)

// With every port free, Main says it is ready, after the web chat's
// address, and stops when its context ends.
func TestMainReady(t *testing.T) {
	args := []string{"--creds_file", filepath.Join(t.TempDir(), "allinone.creds"), "--data_dir", t.TempDir(), "--no_demo", "--web_address", "127.0.0.1:0", "--admin_address", "127.0.0.1:0"}
	var stdout, stderr meshtest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Main(ctx, args, terminal(t), &stdout, &stderr) }()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(stderr.String(), "botmesh is ready") {
		select {
		case err := <-done:
			t.Fatalf("botmesh ended before it was ready: %v; stderr:\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("botmesh not ready after 60s; stderr:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	out := stderr.String()
	web := strings.Index(out, "Web chat: http://127.0.0.1:")
	if web < 0 || web > strings.Index(out, "botmesh is ready") {
		t.Errorf("the web chat's address is not printed before ready:\n%s", out)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("botmesh: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("botmesh did not stop within 30s of its context's end")
	}
}

// terminal returns a pseudo-terminal for stdin; Main must see a terminal.
func terminal(t *testing.T) *os.File {
	t.Helper()
	tty := ptytest.Open(t)
	if !isTerminal(tty) {
		t.Fatalf("%s is not a terminal", tty.Name())
	}
	return tty
}
