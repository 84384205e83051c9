package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/internal/allinone"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/flagenv"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/sdk/natsconn"
	"github.com/nats-io/nats.go"
)

// botctlBinary builds cmd/botctl once per test run.
var botctlBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "botmesh-e2e-botctl-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/botmesh/botmesh/cmd/botctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build botctl: %v\n%s", err, out)
	}
	return filepath.Join(dir, "botctl"), nil
})

// asUser gives a command the environment of a user whose configuration
// directory is home and state directory home/state: no BOTMESH_
// variables, XDG_CONFIG_HOME=home, XDG_STATE_HOME=home/state.
func asUser(home string) func(*exec.Cmd) {
	return func(cmd *exec.Cmd) {
		cmd.Env = []string{"XDG_CONFIG_HOME=" + home, "XDG_STATE_HOME=" + filepath.Join(home, "state")}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, flagenv.Prefix) && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "XDG_STATE_HOME=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
	}
}

// botctl runs botctl as the user whose configuration directory is home and
// returns its stdout, stderr and exit code.
func botctl(t *testing.T, home string, args ...string) (string, string, int) {
	t.Helper()
	b, err := botctlBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b, args...)
	asUser(home)(cmd)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	err = cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("botctl: %v", err)
	}
	return out.String(), errs.String(), code
}

// The all-in-one's embedded NATS server refuses a client without its
// credentials, and takes the ones in the file it writes (mode 0600), with
// which another process joins the mesh as any part would.
func TestAllInOneAuthPort(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "botmesh")
	credsPath := filepath.Join(dir, "allinone.creds")
	in := adaptertest.New("test")
	readyURL := runAllInOne(t, allinone.Config{CredsFile: credsPath, Router: router.Config{Timeout: 5 * time.Second}, Gateway: gateway.Config{ReplyTimeout: 10 * time.Second}}, nil, in)

	for p, mode := range map[string]os.FileMode{dir: os.ModeDir | 0o700, credsPath: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
	}
	cf, err := natsconn.ReadCredsFile(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	if cf.User != "admin" || len(cf.Password) < 32 || len(cf.CA) != 0 || !strings.HasPrefix(cf.URL, "nats://127.0.0.1:") {
		t.Errorf("credentials file: user %q, %d-character password, URL %s, CA %q", cf.User, len(cf.Password), cf.URL, cf.CA)
	}
	if want := strings.Replace(cf.URL, "nats://", "nats://admin:"+cf.Password+"@", 1); readyURL != want {
		t.Errorf("ready URL is not the file's URL with its credentials")
	}

	t.Run("no credentials", func(t *testing.T) {
		nc, err := nats.Connect(cf.URL)
		if !errors.Is(err, nats.ErrAuthorization) {
			if nc != nil {
				nc.Close()
			}
			t.Fatalf("connected without credentials: %v", err)
		}
	})
	t.Run("a wrong password", func(t *testing.T) {
		if _, err := nats.Connect(cf.URL, nats.UserInfo("admin", "guess")); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("the in-process parts' user is not the file's", func(t *testing.T) {
		if _, err := nats.Connect(cf.URL, nats.UserInfo("botmesh", cf.Password)); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("the credentials in the file", func(t *testing.T) {
		nc, err := nats.Connect(cf.URL, nats.UserInfo(cf.User, cf.Password))
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
		// A command service in another process joins with --nats_creds.
		m := meshtest.Mesh(t, nil, func(c *mesh.Config) { c.NATSURL, c.Auth.Creds = cf.URL, credsPath })
		svc, err := command.New(m, "whoami", handler{usage: "whoami", exec: func(_ context.Context, _ *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
			rsp.Result = []byte("a part with the credentials file")
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			rep := ask(t, in, "whoami")
			if string(rep.Data) == "a part with the credentials file" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("whoami: %q", rep.Data)
			}
		}
	})
	if rep := ask(t, in, "ping"); string(rep.Data) != "pong" {
		t.Errorf("ping: %q", rep.Data)
	}
}

// The attacks of issue 12 against the all-in-one as users run it (the
// built binary): botctl without its credentials is refused with a sentence
// that says what to do, and so is a raw NATS client; botctl run by the
// user who started botmesh needs no flags.
func TestAllInOneAuthBotctl(t *testing.T) {
	home := t.TempDir()
	credsPath := filepath.Join(home, "botmesh", "allinone.creds")
	aio := startPiped(t, "botmesh", "botmesh", asUser(home), "--log_level", "info")
	waitStderr(t, aio.p, regexp.MustCompile(`NATS credentials for botctl and other parts: `+regexp.QuoteMeta(credsPath)+` \(only you can read it\)`), 30*time.Second)
	fi, err := os.Stat(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("credentials file mode %v", fi.Mode())
	}
	cf, err := natsconn.ReadCredsFile(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(aio.p.stderr.String(), cf.Password) {
		t.Error("botmesh printed the admin password")
	}

	t.Run("botctl with no flags uses the file", func(t *testing.T) {
		out, errs, code := botctl(t, home, "ping")
		if out != "pong\n" || code != 0 {
			t.Errorf("botctl ping: %q (exit %d)\nstderr:\n%s", out, code, errs)
		}
	})

	t.Run("a raw NATS client without credentials", func(t *testing.T) {
		if _, err := nats.Connect(cf.URL); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("error %v", err)
		}
	})

	register := `register service {"name":"evil","nodes":[{"id":"evil-1","address":"10.6.6.6:80"}]}`
	t.Run("botctl of another user", func(t *testing.T) {
		other := t.TempDir()
		out, errs, code := botctl(t, other, "--nats_url", cf.URL, register, "yes")
		want := "botctl: NATS refused: authorization violation — botctl needs the credentials in " + filepath.Join(other, "botmesh", "allinone.creds") + "; run it as the user that started botmesh or pass --nats_creds FILE\n"
		if out != "" || errs != want || code != 2 {
			t.Errorf("stdout %q, exit %d, stderr:\n%s\nwant:\n%s", out, code, errs, want)
		}
	})

	t.Run("botctl with a wrong file", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "wrong.creds")
		if err := natsconn.WriteCredsFile(wrong, natsconn.CredsFile{URL: cf.URL, User: "admin", Password: natsconn.GeneratePassword()}); err != nil {
			t.Fatal(err)
		}
		out, errs, code := botctl(t, t.TempDir(), "--nats_creds", wrong, register, "yes")
		want := "botctl: NATS refused: authorization violation — botctl needs the credentials in " + wrong + "; run it as the user that started botmesh or pass --nats_creds FILE\n"
		if out != "" || errs != want || code != 2 {
			t.Errorf("stdout %q, exit %d, stderr:\n%s\nwant:\n%s", out, code, errs, want)
		}
		missing := filepath.Join(t.TempDir(), "missing.creds")
		_, errs, code = botctl(t, t.TempDir(), "--nats_url", cf.URL, "--nats_creds", missing, "ping")
		want = "botctl: cannot read the NATS credentials in " + missing + " — run botctl as the user that started botmesh or pass --nats_creds FILE\n"
		if errs != want || code != 2 {
			t.Errorf("exit %d, stderr:\n%s\nwant:\n%s", code, errs, want)
		}
	})

	// None of the refused attempts registered anything.
	if got := aio.ask(t, "list services"); strings.Contains(got, "evil") {
		t.Errorf("list services:\n%s", got)
	}
	aio.in.Close()
	select {
	case <-aio.p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("botmesh did not exit 30s after the end of its input")
	}
	if _, err := os.Stat(credsPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("credentials file left after exit: %v", err)
	}
}

// Beyond loopback the embedded server speaks TLS as well (a CA made at
// start, carried by the credentials file): botmesh says what a part on
// another host needs, plain text is refused, and a part given the file
// joins over TLS on a non-loopback address.
func TestAllInOneAuthBeyondLoopback(t *testing.T) {
	t.Run("the startup line", func(t *testing.T) {
		credsPath := filepath.Join(t.TempDir(), "botmesh", "allinone.creds")
		var out, errs bytes.Buffer
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		if err := allinone.Main(ctx, []string{"--nats_host", "0.0.0.0", "--creds_file", credsPath, "--data_dir", t.TempDir(), "--log_level", "error"}, strings.NewReader("ping\n"), &out, &errs); err != nil {
			t.Fatalf("botmesh: %v\nstderr:\n%s", err, errs.String())
		}
		if out.String() != "pong\n" {
			t.Errorf("stdout %q", out.String())
		}
		host, _ := os.Hostname()
		want := regexp.MustCompile(`(?m)^NATS is open to other hosts \(port (\d+)\), with TLS and a password: a part there needs a copy of ` + regexp.QuoteMeta(credsPath) + `, given as --nats_creds, and --nats_url tls://` + regexp.QuoteMeta(host) + `:(\d+)$`)
		if m := want.FindStringSubmatch(errs.String()); m == nil || m[1] != m[2] {
			t.Errorf("stderr:\n%s\nwant a line matching %s", errs.String(), want)
		}
		if _, err := os.Stat(credsPath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("credentials file left after exit: %v", err)
		}
	})

	credsPath := filepath.Join(t.TempDir(), "botmesh", "allinone.creds")
	in := adaptertest.New("test")
	runAllInOne(t, allinone.Config{NATSHost: "0.0.0.0", NATSPort: -1, CredsFile: credsPath, Router: router.Config{Timeout: 5 * time.Second}, Gateway: gateway.Config{ReplyTimeout: 10 * time.Second}}, nil, in)
	cf, err := natsconn.ReadCredsFile(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cf.URL, "tls://127.0.0.1:") || len(cf.CA) == 0 {
		t.Fatalf("credentials file: URL %s, CA %d bytes", cf.URL, len(cf.CA))
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(cf.URL, "tls://"))
	if nc, err := nats.Connect("nats://127.0.0.1:"+port, nats.UserInfo(cf.User, cf.Password)); err == nil {
		nc.Close()
		t.Error("connected without verifying the server's certificate")
	}
	host := "127.0.0.1"
	if ip := nonLoopbackIP(); ip != "" {
		host = ip // as another host would reach it
	}
	m := meshtest.Mesh(t, nil, func(c *mesh.Config) {
		c.NATSURL, c.Auth.Creds = "nats://"+net.JoinHostPort(host, port), credsPath
	})
	if _, err := m.NATS().TLSConnectionState(); err != nil {
		t.Errorf("the part does not speak TLS: %v", err)
	}
	svc, err := command.New(m, "remote", handler{usage: "remote", exec: func(_ context.Context, _ *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
		rsp.Result = []byte("over TLS via " + host)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rep := ask(t, in, "remote")
		if string(rep.Data) == "over TLS via "+host {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote: %q", rep.Data)
		}
	}
}

// nonLoopbackIP returns an IPv4 address of this host that is not
// loopback, or "".
func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return ""
}

// waitStderr waits until a process's stderr matches re.
func waitStderr(t *testing.T, p *proc, re *regexp.Regexp, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if re.MatchString(p.stderr.String()) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %s", p.name, p.err, re)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %s within %s", p.name, re, within)
		}
	}
}
