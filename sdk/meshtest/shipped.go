package meshtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ShippedNATS starts nats-server with the shipped permissions (perms: the
// path of deploy/nats/permissions.conf), JetStream and a random password
// for each of its users; it returns the server and the passwords by
// variable (BOTMESH_NATS_PASSWORD_ROUTER, …). The server is shut down when
// the test ends.
func ShippedNATS(tb testing.TB, perms string) (*server.Server, map[string]string) {
	tb.Helper()
	b, err := os.ReadFile(perms)
	if err != nil {
		tb.Fatal(err)
	}
	pw := map[string]string{}
	for _, v := range regexp.MustCompile(`\$(BOTMESH_NATS_PASSWORD_[A-Z_]+)`).FindAllStringSubmatch(string(b), -1) {
		pw[v[1]] = fmt.Sprintf("pw-%s-%d", strings.ToLower(v[1]), time.Now().UnixNano())
		tb.Setenv(v[1], pw[v[1]])
	}
	dir := tb.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(filepath.Join(dir, "permissions.conf"), b, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(conf, fmt.Appendf(nil, "jetstream { store_dir: %q }\ninclude ./permissions.conf\n", filepath.Join(dir, "js")), 0o600); err != nil {
		tb.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		tb.Fatal(err)
	}
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatal("meshtest: nats-server not ready after 10s")
	}
	tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s, pw
}

// Violations collects the errors NATS reports to a connection
// asynchronously (permissions violations among them).
type Violations chan error

// NewViolations returns a collector and the option that makes a
// connection report to it.
func NewViolations() (Violations, nats.Option) {
	v := make(Violations, 100)
	return v, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case v <- err:
		default:
		}
	})
}

// Refused waits up to 10 s for a permissions violation whose text holds
// what (e.g. `Publish to "bot.v1.in.slack"`), and fails the test if none
// comes.
func (v Violations) Refused(tb testing.TB, what string) {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	var others []string
	for {
		select {
		case err := <-v:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), what) {
				return
			}
			others = append(others, err.Error())
		case <-deadline:
			tb.Fatalf("no permissions violation for %s (others: %q)", what, others)
		}
	}
}
