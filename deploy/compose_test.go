//go:build compose

// The compose environment end to end: images built from this repository,
// started with docker compose (or docker-compose 1.29), driven through
// botctl and through the web gateways' websocket as a browser would.
// `make test-compose` runs it; it cleans up its containers, networks,
// volumes and images.
package deploy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
)

var (
	repo, _  = filepath.Abs("..")
	tag      = "e2e" + randHex(4)
	toolsDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "botmesh-compose-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	toolsDir = dir
	code := build()
	if code == 0 {
		code = m.Run()
	}
	// The images this run tagged.
	out, _ := exec.Command("docker", "images", "--filter", "reference=botmesh/*:"+tag, "-q").Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rmi", "-f"}, ids...)...).Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// build makes the images (tagged for this run only) and botctl.
func build() int {
	steps := [][]string{
		{"deploy/images.sh", tag},
		{"deploy/images.sh", tag, "uptime=./examples/uptime"},
		{"go", "build", "-o", toolsDir + "/", "./cmd/botctl"},
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(repo, "go.work"))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "%v: %v\n", s, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "%s took %s\n", strings.Join(s, " "), time.Since(start).Round(time.Second))
	}
	return 0
}

// env is one running compose project.
type env struct {
	t       *testing.T
	project string
	files   []string
	vars    []string
	natsURL string
	token   string
}

func composeCmd() []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	return []string{"docker-compose"}
}

func up(t *testing.T, files ...string) *env {
	t.Helper()
	natsPort := freePorts(t, 1)
	webPort := freePorts(t, 1)
	e := &env{
		t:       t,
		project: "botmesh" + randHex(3),
		files:   files,
		token:   randHex(12),
		natsURL: fmt.Sprintf("nats://127.0.0.1:%d", natsPort),
	}
	e.vars = []string{
		"BOTMESH_TAG=" + tag,
		"BOTMESH_WEB_TOKEN=" + e.token,
		fmt.Sprintf("BOTMESH_NATS_PORT=%d", natsPort),
		fmt.Sprintf("BOTMESH_WEB_PORT=%d", webPort),
		routePassword + "=" + randHex(12),
	}
	// One NATS password per role, as make .env writes them.
	for _, r := range natsRoles {
		e.vars = append(e.vars, r.password+"="+randHex(12))
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := e.compose("logs", "--no-color", "--tail", "40")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := e.down("down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	start := time.Now()
	if out, err := e.compose("up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	e.waitHealthy(3 * time.Minute)
	t.Logf("environment %s healthy %s after up", e.project, time.Since(start).Round(time.Second))
	return e
}

// down runs compose with args (a down), once more if Docker refused to
// remove the network because a container it had just stopped was still
// attached ("has active endpoints": seen once in CI, after every
// container was removed); down is idempotent.
func (e *env) down(args ...string) (string, error) {
	out, err := e.compose(args...)
	if err != nil && strings.Contains(out, "has active endpoints") {
		time.Sleep(2 * time.Second)
		var again string
		again, err = e.compose(args...)
		out += again
	}
	return out, err
}

func (e *env) compose(args ...string) (string, error) {
	c := composeCmd()
	full := append([]string{}, c[1:]...)
	full = append(full, "-p", e.project)
	for _, f := range e.files {
		full = append(full, "-f", filepath.Join(repo, f))
	}
	full = append(full, args...)
	cmd := exec.Command(c[0], full...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), e.vars...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *env) containers(service string) []string {
	e.t.Helper()
	args := []string{"ps", "-q"}
	if service != "" {
		args = append(args, service)
	}
	out, err := e.compose(args...)
	if err != nil {
		e.t.Fatalf("compose ps: %v\n%s", err, out)
	}
	return strings.Fields(out)
}

// waitHealthy waits until every container of the project is healthy.
func (e *env) waitHealthy(within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ids := e.containers("")
		out, _ := exec.Command("docker", append([]string{"inspect", "--format", "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"}, ids...)...).Output()
		var waiting []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasSuffix(l, " running healthy") {
				waiting = append(waiting, l)
			}
		}
		if len(ids) > 0 && len(waiting) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("not healthy within %s: %v", within, waiting)
		}
		time.Sleep(time.Second)
	}
}

// botctl sends messages through botctl; it returns the output and whether
// every reply was a success.
func (e *env) botctl(msgs ...string) (string, bool) {
	e.t.Helper()
	password := e.natsPassword("BOTMESH_NATS_PASSWORD_BOTCTL")
	cmd := exec.Command(filepath.Join(toolsDir, "botctl"), append([]string{"--nats_url", e.natsURL, "--nats_user", "botctl", "--reply_timeout", "30s"}, msgs...)...)
	cmd.Env = append(os.Environ(), "BOTMESH_NATS_PASSWORD="+password)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return out.String(), false
	}
	if err != nil {
		e.t.Fatalf("botctl %q: %v\n%s", msgs, err, errb.String())
	}
	return out.String(), true
}

// webPorts returns the host port of the web chat: the front door's, in
// front of every web gateway replica.
func (e *env) webPorts() []string {
	e.t.Helper()
	out, err := e.compose("port", "frontdoor", "8080")
	if err != nil {
		e.t.Fatalf("compose port: %v\n%s", err, out)
	}
	_, port, err := net.SplitHostPort(strings.TrimSpace(out))
	if err != nil {
		e.t.Fatalf("compose port answered %q", out)
	}
	return []string{port}
}

// frontdoorSaw waits until the front door's log says it found n web
// gateways.
func (e *env) frontdoorSaw(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := e.compose("logs", "--no-color", "frontdoor")
		for _, l := range strings.Split(out, "\n") {
			_, js, ok := strings.Cut(l, "| ")
			var rec struct {
				Msg   string `json:"msg"`
				Count int    `json:"count"`
			}
			if ok && json.Unmarshal([]byte(js), &rec) == nil && rec.Msg == "web gateways" && rec.Count == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the front door's log does not say it found %d web gateways after 30s:\n%s", n, out)
		}
		time.Sleep(time.Second)
	}
}

func TestCompose(t *testing.T) {
	e := up(t, "docker-compose.yml")

	t.Run("ping, list services, echo, query through botctl", func(t *testing.T) {
		out, ok := e.botctl("ping", "list services", "echo hi from compose", `query greeter Greeter.Hello {"name":"Ada"}`)
		if !ok {
			t.Fatalf("an error reply:\n%s", out)
		}
		for _, want := range []string{"pong\n", "go.micro.bot.echo (1 node)", "go.micro.bot.registry (1 node)", "go.micro.bot.query (1 node)", "go.micro.bot.note (1 node)", "greeter (1 node)", "hi from compose\n", `"message": "Hello, Ada!"`} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("scaled: 500 messages through the front door to 3 web gateways and 3 routers", func(t *testing.T) {
		if out, err := e.compose("up", "-d", "--no-recreate", "--scale", "router=3", "--scale", "gateway-web=3"); err != nil {
			t.Fatalf("scale: %v\n%s", err, out)
		}
		e.waitHealthy(2 * time.Minute)
		if n := len(e.containers("router")); n != 3 {
			t.Fatalf("%d routers, want 3", n)
		}
		before := e.webPorts()
		res := burst(t, e.webPorts(), e.token, 500, nil)
		res.check(t, 500)
		e.frontdoorSaw(t, 3)
		if after := e.webPorts(); after[0] != before[0] {
			t.Errorf("the web chat moved from port %s to %s when scaled", before[0], after[0])
		}
	})

	t.Run("the front door after the web gateways are recreated", func(t *testing.T) {
		before := e.webPorts()
		old := e.containers("gateway-web")
		if out, err := e.compose("up", "-d", "--no-deps", "--force-recreate", "--scale", "gateway-web=3", "gateway-web"); err != nil {
			t.Fatalf("recreate: %v\n%s", err, out)
		}
		e.waitHealthy(2 * time.Minute)
		if now := e.containers("gateway-web"); len(now) != 3 || slices.ContainsFunc(now, func(id string) bool { return slices.Contains(old, id) }) {
			t.Fatalf("gateway-web containers %v, want 3 new ones (were %v)", now, old)
		}
		if after := e.webPorts(); after[0] != before[0] {
			t.Fatalf("the web chat moved from port %s to %s", before[0], after[0])
		}
		// The page, and the chat through it, at the same address.
		rsp, err := http.Get("http://127.0.0.1:" + before[0] + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("<html")) {
			t.Fatalf("GET /: %s\n%.300s", rsp.Status, body)
		}
		res := burst(t, before, e.token, 60, nil)
		res.check(t, 60)
	})

	t.Run("a command service added and removed while everything runs", func(t *testing.T) {
		withUptime := &env{t: t, project: e.project, files: []string{"docker-compose.yml", "deploy/testdata/uptime.yml"}, vars: e.vars, natsURL: e.natsURL}
		if out, err := withUptime.compose("up", "-d", "--no-recreate", "uptime"); err != nil {
			t.Fatalf("up uptime: %v\n%s", err, out)
		}
		started := time.Now()
		for {
			out, ok := e.botctl("uptime")
			if ok && strings.HasPrefix(out, "up ") {
				break
			}
			if time.Since(started) > 60*time.Second {
				t.Fatalf("uptime not usable 60s after up: %q", out)
			}
			time.Sleep(time.Second)
		}
		t.Logf("uptime usable %s after docker compose up -d uptime", time.Since(started).Round(100*time.Millisecond))
		// help lists it with its description once the routers have its
		// Help (asked in the background when a service appears).
		for {
			out, _ := e.botctl("help")
			if strings.Contains(out, "uptime - Says how long the uptime service has been running") {
				break
			}
			if time.Since(started) > 30*time.Second {
				t.Fatalf("help does not list uptime:\n%s", out)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if out, err := withUptime.compose("rm", "-s", "-f", "uptime"); err != nil {
			t.Fatalf("rm uptime: %v\n%s", err, out)
		}
		// Stopped with SIGTERM, it deregistered: routers drop it at once;
		// a call that raced the news gets "could not reach".
		removed := time.Now()
		for {
			out, ok := e.botctl("uptime")
			if ok {
				t.Fatalf("uptime answered after removal: %q", out)
			}
			if strings.HasPrefix(out, `"uptime" is gone: go.micro.bot.uptime was last seen `) {
				break
			}
			if !strings.HasPrefix(out, "uptime: could not reach go.micro.bot.uptime") && !strings.HasPrefix(out, "uptime: no instance of go.micro.bot.uptime") {
				t.Fatalf("uptime after removal: %q", out)
			}
			if time.Since(removed) > 15*time.Second {
				t.Fatal("uptime still known 15s after removal")
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("uptime gone from the router that answered %s after docker compose rm", time.Since(removed).Round(100*time.Millisecond))
		// Each router hears of the removal on its own registry watch: the
		// help of every one of them (the routers take turns) drops it.
		for clean := 0; clean < 6; {
			out, _ := e.botctl("help")
			if !strings.Contains(out, "uptime") {
				clean++
				continue
			}
			clean = 0
			if time.Since(removed) > 15*time.Second {
				t.Fatalf("help still lists uptime 15s after removal:\n%s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("help of every router without uptime %s after docker compose rm", time.Since(removed).Round(100*time.Millisecond))
	})

	t.Run("secrets never reach the logs", func(t *testing.T) {
		logs, err := e.compose("logs", "--no-color")
		if err != nil {
			t.Fatalf("compose logs: %v", err)
		}
		if len(logs) < 1000 {
			t.Fatalf("only %d bytes of logs: nothing to search", len(logs))
		}
		for _, v := range e.vars {
			name, secret, _ := strings.Cut(v, "=")
			if (strings.HasPrefix(name, "BOTMESH_NATS_PASSWORD_") || name == "BOTMESH_WEB_TOKEN") && strings.Contains(logs, secret) {
				t.Errorf("%s appears in the logs", name)
			}
		}
		t.Logf("searched %d bytes of logs of %d containers", len(logs), len(e.containers("")))
	})

	t.Run("a router killed during a burst: every message answered once", func(t *testing.T) {
		routers := e.containers("router")
		res := burst(t, e.webPorts(), e.token, 300, func() {
			if out, err := exec.Command("docker", "kill", routers[0]).CombinedOutput(); err != nil {
				t.Errorf("docker kill: %v %s", err, out)
			}
		})
		res.check(t, 300)
	})

	t.Run("a note kept across a restart of every part", func(t *testing.T) {
		if out, ok := e.botctl("note add kept across restarts"); !ok || !strings.Contains(out, "noted (note ") {
			t.Fatalf("note add: %q", out)
		}
		// Every container, NATS (its store on the nats-data volume)
		// included.
		if out, err := e.compose("restart", "-t", "5"); err != nil {
			t.Fatalf("compose restart: %v\n%s", err, out)
		}
		e.waitHealthy(3 * time.Minute)
		// The routers find the note service again through the registry
		// (bounded: 60 s).
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, ok := e.botctl("notes")
			if ok && strings.Contains(out, "kept across restarts") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("notes after the restart of every part: %q", out)
			}
			time.Sleep(time.Second)
		}
	})
}

// make up's wait (deploy/compose.sh, which docker-compose 1.29 needs: it
// has no --wait) passes a healthy project, and gives up on a container
// that never gets healthy: it names it, with its last log lines, and fails.
func TestComposeWait(t *testing.T) {
	e := &env{t: t, project: "botmeshwait" + randHex(3), files: []string{"deploy/testdata/wait.yml"}, vars: []string{"BOTMESH_TAG=" + tag}}
	t.Cleanup(func() {
		if out, err := e.down("--profile", "broken", "down", "-v", "-t", "1"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	wait := func(timeout string) (string, error) {
		cmd := exec.Command(filepath.Join(repo, "deploy", "compose.sh"), "wait")
		cmd.Env = append(os.Environ(), "BOTMESH_PROJECT="+e.project, "BOTMESH_UP_TIMEOUT="+timeout)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	if out, err := e.compose("up", "-d", "fine"); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	start := time.Now()
	if out, err := wait("60"); err != nil || !strings.Contains(out, "every container is healthy: 1 in project "+e.project) {
		t.Fatalf("a healthy project: %v\n%s", err, out)
	}
	t.Logf("a healthy project passed %s after up", time.Since(start).Round(100*time.Millisecond))

	if out, err := e.compose("--profile", "broken", "up", "-d", "broken"); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	start = time.Now()
	out, err := wait("10")
	took := time.Since(start)
	if err == nil {
		t.Fatalf("a container that never gets healthy passed:\n%s", out)
	}
	for _, want := range []string{"not healthy after 10s", "broken /" + e.project + "_broken_1 running", "--- last log lines of broken (" + e.project + "_broken_1):", "waiting for NATS"} {
		if !strings.Contains(strings.ReplaceAll(out, "-broken-1", "_broken_1"), want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "last log lines of fine") {
		t.Errorf("it named the healthy container too:\n%s", out)
	}
	if took > 40*time.Second {
		t.Errorf("gave up after %s, want about 10s", took)
	}
	t.Logf("gave up after %s:\n%s", took.Round(100*time.Millisecond), out)
}

func TestComposeCluster(t *testing.T) {
	e := up(t, "docker-compose.yml", "docker-compose.cluster.yml")
	if out, ok := e.botctl("ping", "echo cluster"); !ok || out != "pong\ncluster\n" {
		t.Fatalf("cluster basics: %q", out)
	}
	// Kill the node that leads the message stream: the hardest case, the
	// stream has no leader until the two nodes left elect one. Gateways
	// offer their messages again until the stream confirms them, routers
	// store replies in the reply stream and claim each message, and calls
	// are sent again to services that answer them once: every message is
	// answered once.
	leader := e.streamLeader()
	t.Logf("the stream's leader is %s: killing it mid-burst", leader)
	nodes := e.containers(leader)
	if len(nodes) != 1 {
		t.Fatalf("containers of %s: %v", leader, nodes)
	}
	res := burst(t, e.webPorts(), e.token, 200, func() {
		if out, err := exec.Command("docker", "kill", nodes[0]).CombinedOutput(); err != nil {
			t.Errorf("docker kill: %v %s", err, out)
		}
	})
	res.check(t, 200)
	// The mesh keeps answering on the two nodes left.
	after := burst(t, e.webPorts(), e.token, 100, nil)
	after.check(t, 100)
}

// natsPassword returns the NATS password in the variable name the
// environment was started with.
func (e *env) natsPassword(name string) string {
	for _, v := range e.vars {
		if p, ok := strings.CutPrefix(v, name+"="); ok {
			return p
		}
	}
	return ""
}

// streamLeader returns the compose service (its server name) of the NATS
// node that leads the routers' message stream.
func (e *env) streamLeader() string {
	e.t.Helper()
	nc, err := nats.Connect(e.natsURL, nats.UserInfo("router", e.natsPassword("BOTMESH_NATS_PASSWORD_ROUTER")))
	if err != nil {
		e.t.Fatalf("connect to NATS: %v", err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := js.StreamInfo("BOTMESH_IN")
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			if len(info.Cluster.Replicas) != 2 {
				e.t.Fatalf("stream replicas: %+v, want 2 besides the leader", info.Cluster.Replicas)
			}
			return info.Cluster.Leader
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no stream leader after 30s: %v %+v", err, info)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// burstResult is what a burst of messages got back.
type burstResult struct {
	mu      sync.Mutex
	replies map[string][]string // message id → reply texts
	errs    []string
}

func (r *burstResult) check(t *testing.T, n int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		t.Error(e)
	}
	twice, missing := 0, 0
	for i := range n {
		id := fmt.Sprintf("m%d", i)
		got := r.replies[id]
		switch {
		case len(got) == 0:
			missing++
		case len(got) > 1:
			twice++
		case got[0] != fmt.Sprintf("burst %d", i):
			t.Errorf("%s answered %q", id, got[0])
		}
	}
	t.Logf("%d messages: %d answered, %d missing, %d answered more than once", n, len(r.replies), missing, twice)
	if missing > 0 || twice > 0 {
		t.Errorf("%d messages without a reply, %d with more than one", missing, twice)
	}
}

// burst sends n messages "echo burst i" through the web gateways at ports,
// from many browser sessions (at most 8 messages each, under the routers'
// per-user rate limit), and collects the replies. mid, if not nil, runs
// when half the messages are sent.
func burst(t *testing.T, ports []string, token string, n int, mid func()) *burstResult {
	t.Helper()
	res := &burstResult{replies: map[string][]string{}}
	const perSession = 8
	var wg sync.WaitGroup
	var once sync.Once
	sent := make(chan struct{}, n)
	for s := 0; s*perSession < n; s++ {
		port := ports[s%len(ports)]
		first, last := s*perSession, min((s+1)*perSession, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := session(port, token, first, last, res, sent); err != nil {
				res.mu.Lock()
				res.errs = append(res.errs, fmt.Sprintf("session on %s: %v", port, err))
				res.mu.Unlock()
			}
		}()
	}
	if mid != nil {
		go func() {
			for i := 0; i < n/2; i++ {
				<-sent
			}
			once.Do(mid)
		}()
	}
	wg.Wait()
	// A late second reply would show here.
	time.Sleep(2 * time.Second)
	return res
}

// session is one browser tab: hello, then messages first..last-1, then the
// replies, until each has its final one (or 90 s pass).
func session(port, token string, first, last int, res *burstResult, sent chan<- struct{}) error {
	d := websocket.Dialer{Subprotocols: []string{"botmesh.web.v1"}, HandshakeTimeout: 10 * time.Second}
	h := http.Header{"Origin": []string{"http://127.0.0.1:" + port}}
	c, _, err := d.Dial("ws://127.0.0.1:"+port+"/ws", h)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.WriteJSON(map[string]any{"type": "hello", "token": token, "conversation": "c" + randHex(4)}); err != nil {
		return err
	}
	var welcome struct{ Type, Code, Message string }
	if err := c.ReadJSON(&welcome); err != nil || welcome.Type != "welcome" {
		return fmt.Errorf("no welcome: %v %+v", err, welcome)
	}
	for i := first; i < last; i++ {
		if err := c.WriteJSON(map[string]any{"type": "message", "id": fmt.Sprintf("m%d", i), "text": fmt.Sprintf("echo burst %d", i)}); err != nil {
			return err
		}
		sent <- struct{}{}
	}
	_ = c.SetReadDeadline(time.Now().Add(90 * time.Second))
	final := 0
	for final < last-first {
		var f frame
		_, data, err := c.ReadMessage()
		if err != nil {
			return fmt.Errorf("%d of %d replies, then: %w", final, last-first, err)
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return err
		}
		switch {
		case f.Type == "reply" && f.Kind != "progress":
			final++
			res.mu.Lock()
			res.replies[f.InReplyTo] = append(res.replies[f.InReplyTo], f.Text)
			res.mu.Unlock()
		case f.Type == "error":
			return fmt.Errorf("error frame %s: %s", f.Code, f.Message)
		}
	}
	// Wait a moment for a second reply to any of them.
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for {
		var f frame
		if err := c.ReadJSON(&f); err != nil {
			return nil
		}
		if f.Type == "reply" && f.Kind != "progress" {
			res.mu.Lock()
			res.replies[f.InReplyTo] = append(res.replies[f.InReplyTo], f.Text)
			res.mu.Unlock()
		}
	}
}

// frame is a websocket frame from the web gateway.
type frame struct {
	Type      string `json:"type"`
	InReplyTo string `json:"in_reply_to"`
	Kind      string `json:"kind"`
	Text      string `json:"text"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

// freePorts returns the first of n consecutive free loopback ports.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
