package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/mesh"
)

// startEtcd runs a one-member etcd (Debian's etcd-server) on loopback
// ports with its data in a temporary directory, until the test ends, and
// returns its client endpoint (host:port).
func startEtcd(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatal("etcd is not installed: apt-get install etcd-server (tools/debian-deps.sh installs it)")
	}
	client := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	p := &proc{name: "etcd", stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path,
		"--name", "e2e", "--data-dir", t.TempDir(),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e="+peer, "--initial-cluster-state", "new",
		"--log-level", "warn")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- stderr of etcd:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		rsp, err := http.Get("http://" + client + "/health")
		if err == nil {
			body, _ := io.ReadAll(rsp.Body)
			rsp.Body.Close()
			if strings.Contains(string(body), `"health":"true"`) {
				return client
			}
		}
		select {
		case <-p.done:
			t.Fatalf("etcd exited: %v\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not healthy after 30s: %v\n%s", err, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// botmesh on go-micro's etcd registry (--registry etcd --registry_address):
// its own services register in etcd and serve their commands; the Micro
// Bot blog's service registered in etcd (go-micro's own flags, http
// transport) is a command, and leaves help when it deregisters.
func TestEtcdRegistry(t *testing.T) {
	endpoint := startEtcd(t)
	in, _ := startMeshWith(t, func(c *mesh.Config) {
		c.Registry = mesh.RegistryEtcd
		c.RegistryAddress = "http://" + endpoint
	})
	eventually(t, in, "list services", func(r reply) bool {
		return r.text == "5 services:\ngo.micro.bot.echo (1 node)\ngo.micro.bot.note (1 node)\ngo.micro.bot.query (1 node)\ngo.micro.bot.registry (1 node)\ngreeter (1 node)"
	})
	if r := chat(t, in, "echo through etcd"); r.text != "through etcd" || r.isErr {
		t.Errorf("echo: %q (error: %v)", r.text, r.isErr)
	}
	if r := chat(t, in, "health greeter"); !strings.HasPrefix(normal(r.text), "greeter: its node is healthy\n• greeter-ID: ok (LATENCY)\n  address: over NATS") {
		t.Errorf("health greeter: %q", r.text)
	}

	seed := startSeed(t, "--registry", "etcd", "--registry_address", endpoint)
	seedSuite(t, in, seed)
}
