package daemontest

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"testing"
)

// fatalTB records a Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// A missing server fails the test and says what to install: CI must not
// pass by skipping.
func TestRequireFailsWithThePackageToInstall(t *testing.T) {
	f := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != any(f) {
				panic(r)
			}
		}()
		Require(f, "botmesh-no-such-server", "botmesh-no-such-package")
	}()
	if !strings.Contains(f.msg, "botmesh-no-such-server not found") || !strings.Contains(f.msg, "apt-get install botmesh-no-such-package") {
		t.Errorf("Require on a missing program: %q", f.msg)
	}
	if p := Require(t, "sh", "dash"); p == "" {
		t.Error("Require found no sh")
	}
}

func TestSelfSignedCert(t *testing.T) {
	c := SelfSignedCert(t, t.TempDir(), "srv", "localhost", "irc.example.test")
	pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := pair.Leaf.VerifyHostname("irc.example.test"); err != nil {
		t.Error(err)
	}
	if err := pair.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
}

// Pid is the running server's process, and 0 once it is stopped.
func TestPid(t *testing.T) {
	p := Start(t, Spec{Name: "sleep", Path: "/bin/sleep", Args: []string{"30"}})
	pid := p.Pid()
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.HasPrefix(string(cmdline), "/bin/sleep\x0030") {
		t.Fatalf("Pid %d: cmdline %q, %v", pid, cmdline, err)
	}
	p.Stop(t)
	if got := p.Pid(); got != 0 {
		t.Errorf("Pid after Stop: %d", got)
	}
}
