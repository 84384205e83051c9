//go:build mdns

package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/flagenv"
	"github.com/botmesh/botmesh/sdk/lan"
)

// noAddress clears every BOTMESH_ variable from a command's environment,
// so that it starts with no NATS address at all.
func noAddress(cmd *exec.Cmd) {
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, flagenv.Prefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
}

// waitLog waits until a process's stderr matches re and returns the match.
func waitLog(t *testing.T, p *proc, re *regexp.Regexp, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before logging %s", p.name, p.err, re)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %s within %s", p.name, re, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var foundOnLAN = regexp.MustCompile(`msg="found NATS announced on the LAN" .*url=(\S+) took=(\S+)`)

// Zero-conf on a LAN: processes started with no address find the NATS
// server that a part announces (hashicorp/mdns), and each other (the NATS
// registry), and commands round-trip. Runs inside a network namespace with
// multicast on loopback (`make test-mdns`).
func TestMDNSLANZeroConf(t *testing.T) {
	t.Run("a router announces the NATS server it uses", func(t *testing.T) {
		began := time.Now()
		url := startNATS(t)
		// The compose policy opens greeter to everyone (query below).
		start(t, "router-1", "router", noAddress, "--nats_url", url, "--policy", composePolicy(t), "--rate_user", "0", "--rate_channel", "0")
		// Nothing is announced unless asked.
		time.Sleep(300 * time.Millisecond)
		if u, err := lan.Find(t.Context(), 500*time.Millisecond, nil); !errors.Is(err, lan.ErrNotFound) {
			t.Fatalf("found %q, %v before anything was announced", u, err)
		}
		announcer := start(t, "router-2", "router", noAddress, "--nats_url", url, "--policy", composePolicy(t), "--nats_announce", "--log_level", "info", "--rate_user", "0", "--rate_channel", "0")
		waitLog(t, announcer, regexp.MustCompile(`msg="announcing NATS on the LAN"`), 10*time.Second)
		if u, err := lan.Find(t.Context(), 2*time.Second, nil); err != nil || u != url {
			t.Fatalf("find: %q, %v; want %s", u, err, url)
		}

		// Everything else starts with no address at all, asked to look.
		var procs []*proc
		for _, name := range []string{"echo", "registry-cmd", "query", "greeter"} {
			procs = append(procs, start(t, name, name, noAddress, "--find_nats", "--log_level", "info"))
		}
		sh := startPiped(t, "gateway", "gateway", noAddress, "--find_nats", "--inputs", "shell", "--log_level", "info", "--reply_timeout", "20s")
		for _, p := range append(procs, sh.p) {
			m := waitLog(t, p, foundOnLAN, 15*time.Second)
			if m[1] != url {
				t.Errorf("%s found %s, want %s", p.name, m[1], url)
			}
			t.Logf("%s found NATS on the LAN in %s", p.name, m[2])
		}

		// An explicit address wins over the announcement.
		other := startNATS(t)
		t.Logf("every part found NATS; %s since the subtest began", time.Since(began).Round(time.Millisecond))
		explicit := start(t, "greeter-b", "greeter", noAddress, "--name", "greeter-b", "--nats_url", other, "--log_level", "info")
		waitLog(t, explicit, regexp.MustCompile(`msg=serving .*registry_name=greeter-b`), 15*time.Second)
		if strings.Contains(explicit.stderr.String(), "found NATS") || !strings.Contains(explicit.stderr.String(), "url="+other) {
			t.Errorf("greeter-b with --nats_url did not use it:\n%s", explicit.stderr.String())
		}

		const services = "4 services:\ngo.micro.bot.echo (1 node)\ngo.micro.bot.query (1 node)\ngo.micro.bot.registry (1 node)\ngreeter (1 node)"
		for started := time.Now(); ; time.Sleep(200 * time.Millisecond) {
			got := sh.ask(t, "list services")
			if got == services {
				t.Logf("list services complete %s after the check began", time.Since(started).Round(time.Millisecond))
				break
			}
			if time.Since(started) > 20*time.Second {
				t.Fatalf("list services:\n%s\nwant\n%s", got, services)
			}
		}
		for _, tc := range []struct{ in, want string }{
			{"echo found you", "found you"},
			{`query greeter Greeter.Hello {"name":"LAN"}`, "{\n  \"message\": \"Hello, LAN!\"\n}"},
			{"health greeter", "greeter: its node is healthy\n• greeter-ID: ok (LATENCY)\n  address: over NATS"},
		} {
			if got := normal(sh.ask(t, tc.in)); got != tc.want {
				t.Errorf("%s:\n%s\nwant:\n%s", tc.in, got, tc.want)
			}
		}
	})

	t.Run("the all-in-one announces its embedded NATS server", func(t *testing.T) {
		// Announced, its server speaks TLS; the credentials file carries
		// the password and the CA that verifies it.
		creds := filepath.Join(t.TempDir(), "allinone.creds")
		aio := startPiped(t, "botmesh", "botmesh", noAddress, "--nats_announce", "--creds_file", creds, "--data_dir", t.TempDir(), "--log_level", "info", "--rate_user", "0", "--rate_channel", "0")
		m := waitLog(t, aio.p, regexp.MustCompile(`msg="announcing NATS on the LAN" .*urls=\[(\S+)\]`), 15*time.Second)
		announced := m[1]
		g := start(t, "greeter-2", "greeter", noAddress, "--name", "greeter-2", "--find_nats", "--nats_creds", creds, "--log_level", "info")
		if f := waitLog(t, g, foundOnLAN, 15*time.Second); f[1] != announced {
			t.Errorf("greeter-2 found %s, want %s", f[1], announced)
		} else {
			t.Logf("greeter-2 found the all-in-one's NATS in %s", f[2])
		}
		want := "{\n  \"message\": \"Hello, Ada!\"\n}"
		for started := time.Now(); ; time.Sleep(200 * time.Millisecond) {
			got := aio.ask(t, `query greeter-2 Greeter.Hello {"name":"Ada"}`)
			if got == want {
				break
			}
			if time.Since(started) > 20*time.Second {
				t.Fatalf("query greeter-2:\n%s", got)
			}
		}
		aio.in.Close()
		select {
		case <-aio.p.done:
			if aio.p.err != nil {
				t.Errorf("botmesh exit: %v", aio.p.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("botmesh did not exit 30s after the end of its input")
		}
	})
}

// composePolicy returns the path of the compose environment's policy
// (deploy/policy.yaml), which opens greeter to everyone: from the package's
// folder (go test) or the repository's root (make test-mdns runs the
// compiled test from there).
func composePolicy(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"../deploy/policy.yaml", "deploy/policy.yaml"} {
		if _, err := os.Stat(p); err == nil {
			abs, err := filepath.Abs(p)
			if err != nil {
				t.Fatal(err)
			}
			return abs
		}
	}
	t.Fatal("deploy/policy.yaml not found from " + mustGetwd(t))
	return ""
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
