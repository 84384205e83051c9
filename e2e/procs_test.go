package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binaries builds the project's binaries once per test run, as `make build`
// does, and returns their directory.
var binaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "botmesh-e2e-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"github.com/botmesh/botmesh/cmd/botmesh",
		"github.com/botmesh/botmesh/router/cmd/router",
		"github.com/botmesh/botmesh/gateway/cmd/gateway",
		"github.com/botmesh/botmesh/services/echo/cmd/echo",
		"github.com/botmesh/botmesh/services/registry-cmd/cmd/registry-cmd",
		"github.com/botmesh/botmesh/services/query/cmd/query",
		"github.com/botmesh/botmesh/services/greeter/cmd/greeter",
		"github.com/nats-io/nats-server/v2",
	)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
})

func bin(t *testing.T, name string) string {
	t.Helper()
	dir, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// proc is a process of the mesh under test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs a binary; its stderr is shown if the test fails. The process
// is killed at the end of the test if still running. prepare, if not nil,
// may set up the command's pipes.
func start(t *testing.T, name, binary string, prepare func(*exec.Cmd), args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin(t, binary), args...), stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	if prepare != nil {
		prepare(p.cmd)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
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
			t.Logf("--- stderr of %s:\n%s", p.name, p.stderr.String())
		}
	})
	return p
}

// stop sends sig and waits for the process to exit; it returns its error.
func (p *proc) stop(t *testing.T, sig syscall.Signal, within time.Duration) error {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		t.Fatalf("%s still running %s after %s", p.name, within, sig)
		return nil
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNATS runs nats-server built from its Go module, with JetStream, and
// returns its URL.
func startNATS(t *testing.T) string {
	t.Helper()
	port := freePort(t)
	start(t, "nats-server", "nats-server", nil, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", t.TempDir())
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "nats://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not listening on %s after 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shell is a gateway process with the shell input: lines written go to the
// mesh, replies come back as lines.
type shell struct {
	p     *proc
	in    io.WriteCloser
	lines chan string
}

func startShell(t *testing.T, natsURL string, args ...string) *shell {
	t.Helper()
	return startPiped(t, "gateway", "gateway", nil, append([]string{"--inputs", "shell", "--nats_url", natsURL}, args...)...)
}

// startPiped runs a binary whose stdin takes messages and whose stdout
// prints replies, line by line (a gateway or the all-in-one with the shell
// input). prepare, if not nil, may change the command first.
func startPiped(t *testing.T, name, binary string, prepare func(*exec.Cmd), args ...string) *shell {
	t.Helper()
	s := &shell{lines: make(chan string, 10000)}
	var outR io.Reader
	s.p = start(t, name, binary, func(cmd *exec.Cmd) {
		if prepare != nil {
			prepare(cmd)
		}
		// OS pipes: a write fails, rather than blocks, once the gateway
		// is gone.
		var err error
		if s.in, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if outR, err = cmd.StdoutPipe(); err != nil {
			t.Fatal(err)
		}
	}, args...)
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	return s
}

func (s *shell) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		select {
		case <-s.p.done:
			t.Fatalf("write to gateway: %v (it exited: %v)", err, s.p.err)
		default:
			t.Fatalf("write to gateway: %v", err)
		}
	}
}

func (s *shell) line(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			t.Fatal("gateway closed its output")
		}
		return l
	case <-time.After(within):
		t.Fatalf("no line from the gateway within %s", within)
		return ""
	}
}
