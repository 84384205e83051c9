package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/internal/ptytest"
)

// Issue 13, as a newcomer meets it: `botmesh` on a terminal while another
// program has the web chat's port. It exits with status 1 and one sentence
// saying what is busy and which flag moves it, and never says it is ready.
func TestAllInOneWebPortBusy(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()

	botmesh := bin(t, "botmesh") // built first: the bound is for the run
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, botmesh, "--web_address", addr)
	asUser(t.TempDir())(cmd)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ptytest.Open(t), &stdout, &stderr
	began := time.Now()
	err = cmd.Run()
	t.Logf("botmesh --web_address %s, on a terminal, exited after %s with %v; stderr:\n%s", addr, time.Since(began).Round(time.Millisecond), err, stderr.String())
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1", err)
	}
	if regexp.MustCompile(`\bready\b`).MatchString(stderr.String() + stdout.String()) {
		t.Errorf("botmesh said it was ready although %s is taken", addr)
	}
	want := "the web chat cannot listen on " + addr + ": the address is in use (by another botmesh, or another program); set --web_address (or BOTMESH_WEB_ADDRESS) to a free address (port 0: any free port)\n"
	if !strings.HasPrefix(stderr.String(), "botmesh: ") || !strings.HasSuffix(stderr.String(), want) {
		t.Errorf("stderr does not end with the sentence %q", want)
	}
}
