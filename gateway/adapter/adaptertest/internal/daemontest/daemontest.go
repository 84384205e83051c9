// Package daemontest runs real server programs (Prosody, ngircd) for tests:
// from a temporary directory, on a free loopback port, stopped when the test
// ends, and restartable on the same port to test reconnects. It also makes
// the self-signed certificates those servers present.
//
// A test that needs a server fails, with the Debian package to install, when
// the program is missing: CI installs the packages, and a skipped test would
// pass without testing anything.
package daemontest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Require returns the path of program, failing t with the Debian package
// to install when it is not in PATH (or in /usr/sbin, where Debian puts
// daemons that a normal user's PATH may lack).
func Require(t testing.TB, program, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", program); isExecutable(p) {
		return p
	}
	t.Fatalf("%s not found in PATH: this test needs a real server; install it with `apt-get install %s`", program, debianPackage)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("daemontest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Spec says how to run a server.
type Spec struct {
	// Name names the server in messages ("prosody").
	Name string
	// Path is the program, Args its arguments.
	Path string
	Args []string
	// Dir is the working directory.
	Dir string
	// Addrs are the host:port addresses the server listens on; Start
	// returns once each accepts connections.
	Addrs []string
}

// Proc is a running server.
type Proc struct {
	spec Spec
	out  *syncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start runs the server described by spec until the test ends. Its output
// is kept and shown if the test fails.
func Start(t testing.TB, spec Spec) *Proc {
	t.Helper()
	p := &Proc{spec: spec, out: &syncBuffer{}}
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", spec.Name, p.Output())
		}
	})
	p.start(t)
	return p
}

func (p *Proc) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Dir = p.spec.Dir
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// The server dies with the test process, even when the test binary is
	// killed before its cleanups run (go test -timeout) — unless the
	// server changes its user, which clears the parent-death signal:
	// ngircd always drops root, and is then left running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("daemontest: start %s: %v", p.spec.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range p.spec.Addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				t.Fatalf("daemontest: %s exited before listening on %s:\n%s", p.spec.Name, addr, p.Output())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("daemontest: %s not listening on %s after 15s:\n%s", p.spec.Name, addr, p.Output())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it
// to exit. Stopping a stopped server does nothing.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("daemontest: %s ignored SIGTERM for 10s; killing it", p.spec.Name)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Restart stops the server and starts it again with the same arguments,
// on the same ports; it returns once the server listens again.
func (p *Proc) Restart(t testing.TB) {
	t.Helper()
	p.Stop(t)
	p.start(t)
}

// Pause freezes the server (SIGSTOP): connections stay open but nothing
// answers, as with a hung server or a dead network path. Resume undoes it;
// the test's end does too.
func (p *Proc) Pause(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { p.signal(t, syscall.SIGCONT) })
}

// Resume lets a paused server run again (SIGCONT).
func (p *Proc) Resume(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGCONT)
}

func (p *Proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		t.Errorf("daemontest: %s: signal %v: %v", p.spec.Name, sig, err)
	}
}

// Output returns what the server printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Pid returns the server's process id, 0 while it is stopped.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Cert is a self-signed certificate and its key, as PEM files.
type Cert struct {
	// CertFile holds the certificate: servers present it, clients trust it
	// (it is its own CA).
	CertFile string
	// KeyFile holds the private key.
	KeyFile string
}

// SelfSignedCert writes a self-signed ECDSA certificate for names (DNS
// names, and 127.0.0.1) to dir/base.crt and dir/base.key, readable by
// everyone so that a server that drops root can still load them.
func SelfSignedCert(t testing.TB, dir, base string, names ...string) Cert {
	t.Helper()
	cert, err := selfSigned(dir, base, names)
	if err != nil {
		t.Fatalf("daemontest: certificate: %v", err)
	}
	return cert
}

func selfSigned(dir, base string, names []string) (Cert, error) {
	if len(names) == 0 {
		return Cert{}, errors.New("no names")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Cert{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return Cert{}, fmt.Errorf("serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"botmesh tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Cert{}, fmt.Errorf("create: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Cert{}, fmt.Errorf("marshal key: %w", err)
	}
	c := Cert{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return Cert{}, err
	}
	if err := os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o644); err != nil {
		return Cert{}, err
	}
	return c, nil
}

// Dir returns a new temporary directory that everyone may read and
// traverse, for servers that drop root before reading their files.
func Dir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/" && p != "."; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatalf("daemontest: %v", err)
		}
	}
	return d
}
