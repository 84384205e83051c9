package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The botmesh binaries, built from this repository's workspace, each
// connected with its role's identity to a server started from nats.conf:
// they work, and the server refuses none of what they do. This is what
// keeps the permissions of permissions.conf equal to the subjects the code
// uses. It builds the binaries (cached by go build after the first run).
func TestIntegrationNATSBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the botmesh binaries")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/",
		"./router/cmd/router", "./gateway/cmd/gateway", "./cmd/botctl",
		"./services/echo/cmd/echo", "./services/registry-cmd/cmd/registry-cmd",
		"./services/query/cmd/query", "./services/greeter/cmd/greeter", "./services/note/cmd/note")
	build.Dir = repo
	build.Env = append(os.Environ(), "GOWORK="+filepath.Join(repo, "go.work"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	pw := setNATSEnv(t, "botmesh-test")
	s, log := startNATS(t, "nats/nats.conf", nil)
	env := func(user string) []string {
		return append(os.Environ(),
			"BOTMESH_NATS_URL="+s.ClientURL(), "BOTMESH_NATS_USER="+user, "BOTMESH_NATS_PASSWORD="+pw[user],
			"BOTMESH_ADMIN_ADDRESS=127.0.0.1:0", "BOTMESH_LAN_WAIT=0")
	}
	start := func(name, user string) {
		cmd := exec.Command(filepath.Join(bin, name))
		cmd.Env = env(user)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// SIGTERM: a service deregisters on the way out, which
			// needs its permissions too.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Errorf("%s did not stop within 15s", name)
			}
			if t.Failed() {
				t.Logf("%s output:\n%s", name, out.String())
			}
		})
	}
	// botctl is a gateway of the platform cli, which posts what it waits
	// for only: schedules are off there by default.
	t.Setenv("BOTMESH_SCHEDULE_PLATFORMS", "cli")
	start("router", "router")
	for _, svc := range []string{"echo", "registry-cmd", "query", "greeter"} {
		start(svc, "service")
	}
	start("note", "service-note")
	botctl := func(msgs ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "botctl"), append([]string{"--reply_timeout", "20s"}, msgs...)...)
		cmd.Env = env("botctl")
		out, err := cmd.Output()
		return string(out), err
	}
	// Every service registered (bounded: 30 s).
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := botctl("list services")
		if err == nil && strings.HasPrefix(out, "5 services:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("services not all registered within 30s: %q %v", out, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// (health: the query service calls greeter, as a go-micro client.)
	out, err := botctl("ping", "echo hi", "health greeter", "get service go.micro.bot.echo", "help")
	if err != nil {
		t.Fatalf("botctl: %v\n%s", err, out)
	}
	for _, want := range []string{"pong\n", "hi\n", "greeter: its node is healthy", "Command.Exec", "echo [text] - Returns the [text]"} {
		if !strings.Contains(out, want) {
			t.Errorf("botctl output lacks %q:\n%s", want, out)
		}
	}
	// Schedules, with the router's identity: set one, list it, remove
	// it; set another that fires, and see its result stored for the cli
	// gateway instance (read here as botctl, which may).
	out, err = botctl("in 1h ping")
	id := regexp.MustCompile(`scheduled ([a-z2-7]{8}): `).FindStringSubmatch(out)
	if err != nil || id == nil {
		t.Fatalf("botctl in 1h ping: %v\n%s", err, out)
	}
	if out, err := botctl("schedules", "unschedule "+id[1]); err != nil || !strings.Contains(out, id[1]+"  next ") || !strings.Contains(out, "removed schedule "+id[1]) {
		t.Errorf("botctl schedules, unschedule: %v\n%s", err, out)
	}
	watcher := dial(t, s, "botctl", pw["botctl"])
	results := make(chan *nats.Msg, 4)
	if _, err := watcher.nc.ChanSubscribe("bot.v1.out.cli.>", results); err != nil {
		t.Fatal(err)
	}
	watcher.flush()
	if out, err := botctl("in 1s echo fired"); err != nil || !strings.Contains(out, "scheduled ") {
		t.Fatalf("botctl in 1s echo fired: %v\n%s", err, out)
	}
	for deadline := time.After(30 * time.Second); ; {
		select {
		case m := <-results:
			if !strings.Contains(string(m.Data), "fired") || strings.HasSuffix(m.Subject, ".p") || !strings.Contains(m.Subject, ".s") {
				continue
			}
		case <-deadline:
			t.Fatalf("the schedule's result was not published within 30s (violations: %q)", log.matching("Violation"))
		}
		break
	}
	// Watches, with the router's identity: the watch list in its bucket.
	// (After the commands above, the rate limit may ask botctl to wait.)
	for _, step := range []struct{ say, want string }{
		{"watch greeter", "watching greeter (1 node now)"},
		{"watching", "this conversation watches: greeter (1 node)"},
		{"unwatch greeter", "stopped watching greeter"},
	} {
		out, err := botctl(step.say)
		for i := 0; i < 20 && strings.Contains(out, "slow down:"); i++ {
			time.Sleep(time.Second)
			out, err = botctl(step.say)
		}
		if err != nil || !strings.Contains(out, step.want) {
			t.Errorf("botctl %s: %v\n%s", step.say, err, out)
		}
	}
	// A gateway: the shell input, as the user gateway-shell. note keeps
	// the conversation's notes in the routers' memory buckets, with its
	// own identity (service-note).
	gw := exec.Command(filepath.Join(bin, "gateway"), "--inputs", "shell")
	gw.Env = env("gateway-shell")
	gw.Stdin = strings.NewReader("ping\necho from the shell\nnote add from the shell\n")
	var gout, gerr bytes.Buffer
	gw.Stdout, gw.Stderr = &gout, &gerr
	if err := runBounded(gw, 60*time.Second); err != nil || !strings.Contains(gout.String(), "pong") || !strings.Contains(gout.String(), "from the shell") || !strings.Contains(gout.String(), "noted (note 1)\n") {
		t.Errorf("gateway --inputs shell: %v\n%s\n%s", err, gout.String(), gerr.String())
	}
	// (The lines of one input run at once: notes waits for a gateway of
	// its own.)
	gw = exec.Command(filepath.Join(bin, "gateway"), "--inputs", "shell")
	gw.Env = env("gateway-shell")
	gw.Stdin = strings.NewReader("notes\n")
	gout.Reset()
	gw.Stdout, gw.Stderr = &gout, &gerr
	if err := runBounded(gw, 60*time.Second); err != nil || !regexp.MustCompile(`^1\. from the shell \(.+\)\n$`).MatchString(gout.String()) {
		t.Errorf("gateway --inputs shell, notes: %v\n%s\n%s", err, gout.String(), gerr.String())
	}
	// The same gateway binary as a web gateway's identity: refused at its
	// first message, whose subject is the shell's.
	gw = exec.Command(filepath.Join(bin, "gateway"), "--inputs", "shell", "--publish_timeout", "2s", "--reply_timeout", "5s")
	gw.Env = env("gateway-web")
	gw.Stdin = strings.NewReader("echo smuggled\n")
	gout.Reset()
	gerr.Reset()
	gw.Stdout, gw.Stderr = &gout, &gerr
	smuggle := time.Now()
	_ = runBounded(gw, 60*time.Second)
	t.Logf("the web identity on the shell subject: %.1fs, user saw %q", time.Since(smuggle).Seconds(), gout.String())
	// (Today the user reads "no reply within ..."; the gateway logs
	// NATS's permissions violation.)
	if strings.Contains(gout.String(), "smuggled") {
		t.Errorf("a web gateway's identity on the shell's subject: %q", gout.String())
	}
	if v := log.matching(`Publish Violation - Subject "bot.v1.in.shell"`); len(v) == 0 {
		t.Errorf("no violation logged for the web identity's publish on bot.v1.in.shell:\n%s", gerr.String())
	}
	for _, v := range log.matching("Violation") {
		if !strings.Contains(v, "gateway-web") {
			t.Errorf("the server refused a part: %s", v)
		}
	}
}

// runBounded runs cmd, killing it after limit.
func runBounded(cmd *exec.Cmd, limit time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		return context.DeadlineExceeded
	}
}
