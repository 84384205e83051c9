package daemontest

import (
	"crypto/tls"
	"fmt"
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
