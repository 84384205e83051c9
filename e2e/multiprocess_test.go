package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botmesh/botmesh/router/policy"
)

// The mesh as deployed: nats-server, two routers, the echo, registry-cmd
// and query command services, the demo greeter and a shell gateway, each its
// own OS process, on the NATS registry and transport.
func TestIntegrationMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	url := startNATS(t)
	common := []string{"--nats_url", url}
	// No rate limits: this test sends hundreds of messages as one user.
	// The shell user is an admin (query): the shipped policy has none.
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, bytes.Replace(policy.DefaultYAML(), []byte("admins: []"), []byte(`admins: ["shell:*"]`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	routerArgs := append(common, "--policy", policyFile, "--resync", "1s", "--log_level", "debug", "--rate_user", "0", "--rate_channel", "0")
	r1 := start(t, "router-1", "router", nil, routerArgs...)
	start(t, "router-2", "router", nil, routerArgs...)
	sh := startShell(t, url, "--reply_timeout", "20s")

	// The routers are up: built-ins answer.
	deadline := time.Now().Add(20 * time.Second)
	for {
		sh.say(t, "ping")
		if l := sh.line(t, 25*time.Second); l == "pong" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no pong; last line %q", l)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Discovery: echo starts after the routers and is usable without a
	// restart.
	started := time.Now()
	echo := start(t, "echo", "echo", nil, common...)
	var usable time.Duration
	for usable == 0 {
		sh.say(t, "echo probe")
		switch l := sh.line(t, 25*time.Second); {
		case l == "probe":
			usable = time.Since(started)
		case (strings.HasPrefix(l, `unknown command "echo probe"`) || strings.HasPrefix(l, `unknown command "echo". Did you mean "echo"?`)) && time.Since(started) < 15*time.Second:
			// The second while echo joins the directory between the
			// match and the suggestion.
		default:
			t.Fatalf("echo after start: %q", l)
		}
	}
	t.Logf("echo (a new process) usable %s after it was started", usable.Round(time.Millisecond))
	sh.say(t, "help")
	if l := readHelp(t, sh); !strings.Contains(l, "echo [text] - Returns the [text]") {
		t.Errorf("help does not list echo:\n%s", l)
	}

	// The registry and query commands, each its own process, and the demo
	// greeter they look at and call.
	start(t, "registry-cmd", "registry-cmd", nil, common...)
	start(t, "query", "query", nil, common...)
	start(t, "greeter", "greeter", nil, common...)
	const services = "4 services:\ngo.micro.bot.echo (1 node)\ngo.micro.bot.query (1 node)\ngo.micro.bot.registry (1 node)\ngreeter (1 node)"
	for started := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		got := sh.ask(t, "list services")
		if got == services {
			t.Logf("registry-cmd, query and greeter listed %s after they were started", time.Since(started).Round(time.Millisecond))
			break
		}
		if time.Since(started) > 20*time.Second {
			t.Fatalf("list services 20s after start:\n%s", got)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{`query greeter Greeter.Hello {"name":"Ada"}`, "{\n  \"message\": \"Hello, Ada!\"\n}"},
		{`query greeter Greeter.Hello {"name":}`, "query: malformed JSON at line 1, column 9: invalid character '}' looking for beginning of value (near `{\"name\":}`)"},
		{"health greeter", "greeter: its node is healthy\n• greeter-ID: ok (LATENCY)\n  address: over NATS"},
		{"get service go.micro.bot.query", "go.micro.bot.query\nversion latest\n1 node:\n• go.micro.bot.query-ID\n  address: ADDRESS\n" +
			"  metadata: botmesh-replay=1, broker=memory, protocol=mucp, registry=nats, server=mucp, transport=nats\n2 endpoints:\n" +
			"• Command.Exec\n  request: ExecRequest {args []string, caller Peer {id string, name string, team string, bot bool}, conversation Conversation {platform string, channel string, thread string, gateway string, event_id string}, text string, command string, answer Answer {state []uint8}}\n  response: ExecResponse {result []uint8, error string, question Question {text string, state []uint8}}\n" +
			"• Command.Help\n  request: HelpRequest\n  response: HelpResponse {usage string, description string, commands []CommandSpec, secret_args []uint32}"},
		{"get service greetr", `get service: unknown service "greetr". Did you mean "greeter"? Type list services to see them all.`},
	} {
		if got := normal(sh.ask(t, tc.in)); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.in, got, tc.want)
		}
	}

	// 200 messages, router-1 stopped half-way: each answered once, in
	// order (the shell prints replies in the order of the lines).
	const n = 200
	for i := range n {
		if i == n/2 {
			if err := r1.stop(t, syscall.SIGTERM, 40*time.Second); err != nil {
				t.Errorf("router-1 exit after SIGTERM: %v", err)
			}
		}
		sh.say(t, fmt.Sprintf("echo m-%d", i))
	}
	for i := range n {
		if l := sh.line(t, 25*time.Second); l != fmt.Sprintf("m-%d", i) {
			t.Fatalf("reply %d: %q", i, l)
		}
	}

	// A command service killed without deregistering leaves help at the
	// next resync, and calling it gets a clear error, then that it is gone.
	if err := echo.stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatal("echo exited cleanly after SIGKILL?")
	}
	killed := time.Now()
	for {
		sh.say(t, "echo gone?")
		l := sh.line(t, 25*time.Second)
		if strings.HasPrefix(l, `"echo" is gone: go.micro.bot.echo was last seen `) {
			break
		}
		if l != "echo: no instance of go.micro.bot.echo is running right now" && !strings.HasPrefix(l, "echo: could not reach go.micro.bot.echo") {
			t.Fatalf("echo after kill -9: %q", l)
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatal("echo still known 15s after kill -9")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("a killed service left the routers' view %s after kill -9", time.Since(killed).Round(time.Millisecond))

	sh.in.Close()
	select {
	case <-sh.p.done:
		if sh.p.err != nil {
			t.Errorf("gateway exit: %v", sh.p.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit 30s after the end of its input")
	}
	if l, ok := <-sh.lines; ok {
		t.Errorf("extra output after the last reply: %q", l)
	}
}

// ask sends text and returns the lines of its reply: it sends a ping after
// it and reads up to the pong (the shell prints replies in order).
func (s *shell) ask(t *testing.T, text string) string {
	t.Helper()
	s.say(t, text)
	s.say(t, "ping")
	var lines []string
	for {
		l := s.line(t, 25*time.Second)
		if l == "pong" {
			return strings.Join(lines, "\n")
		}
		lines = append(lines, l)
		if len(lines) > 200 {
			t.Fatalf("no pong after %q:\n%s", text, strings.Join(lines, "\n"))
		}
	}
}

// readHelp reads the lines of one help reply (it ends with the last service
// command; the built-ins come first and end with "time - ...").
func readHelp(t *testing.T, sh *shell) string {
	t.Helper()
	var lines []string
	for {
		l := sh.line(t, 10*time.Second)
		lines = append(lines, l)
		if strings.HasPrefix(l, "echo ") {
			return strings.Join(lines, "\n")
		}
		if len(lines) > 50 {
			t.Fatalf("help too long:\n%s", strings.Join(lines, "\n"))
		}
	}
}
