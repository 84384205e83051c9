package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Helpers of the fault-matrix tests (faults_test.go): a nats-server that can
// be killed and started again as the same server, a 3-node cluster, a
// command served from the test process that counts its runs, and the tally
// of a burst's answers as a shell user sees them.

// natsNode is a nats-server process with JetStream on a file store, on
// fixed ports, so that it can be killed with SIGKILL and started again as
// the same server: same port, same store, same name.
type natsNode struct {
	name        string
	port        int
	storeDir    string
	monitorPort int    // 0: no monitoring endpoint
	clusterPort int    // 0: not in a cluster
	routes      string // the cluster's route URLs, comma-separated
	p           *proc
}

func newNATSNode(t *testing.T, name string) *natsNode {
	t.Helper()
	return &natsNode{name: name, port: freePort(t), storeDir: t.TempDir()}
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// start runs the server and waits until it accepts connections.
func (n *natsNode) start(t *testing.T) {
	t.Helper()
	args := []string{"-a", "127.0.0.1", "-p", fmt.Sprint(n.port), "-js", "-sd", n.storeDir, "--server_name", n.name}
	if n.monitorPort != 0 {
		args = append(args, "-m", fmt.Sprint(n.monitorPort))
	}
	if n.clusterPort != 0 {
		args = append(args, "--cluster_name", "botmesh", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", n.clusterPort), "--routes", n.routes)
	}
	n.p = start(t, n.name, "nats-server", nil, args...)
	addr := fmt.Sprintf("127.0.0.1:%d", n.port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-n.p.done:
			t.Fatalf("%s exited at start: %v\n%s", n.name, n.p.err, n.p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after 10s", n.name, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the server with SIGKILL, as a crash or an OOM kill would.
func (n *natsNode) kill(t *testing.T) {
	t.Helper()
	if err := n.p.stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatalf("%s exited cleanly after SIGKILL?", n.name)
	}
}

// natsCluster is a 3-node nats-server cluster, each node its own process.
type natsCluster struct {
	nodes []*natsNode
}

func startCluster(t *testing.T) *natsCluster {
	t.Helper()
	c := &natsCluster{}
	var routes []string
	for i := range 3 {
		n := newNATSNode(t, fmt.Sprintf("n%d", i+1))
		n.monitorPort, n.clusterPort = freePort(t), freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", n.clusterPort))
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		n.routes = strings.Join(routes, ",")
		n.start(t)
	}
	// JetStream is up once every node's health check passes and every
	// node knows the same leader of the JetStream meta group (a stream
	// cannot be created before: /healthz alone passes earlier, and a
	// router that cannot create its stream within 10 s exits).
	deadline := time.Now().Add(30 * time.Second)
	for {
		leaders := map[string]bool{}
		var last string
		for _, n := range c.nodes {
			code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.monitorPort))
			if err != nil || code != http.StatusOK {
				last = fmt.Sprintf("%s /healthz: %d %s %v", n.name, code, body, err)
				leaders[""] = true
				continue
			}
			code, body, err = httpGet(fmt.Sprintf("http://127.0.0.1:%d/jsz", n.monitorPort))
			var jsz struct {
				Meta *struct {
					Leader string `json:"leader"`
					Size   int    `json:"cluster_size"`
				} `json:"meta_cluster"`
			}
			if err == nil && code == http.StatusOK && json.Unmarshal(body, &jsz) == nil && jsz.Meta != nil && jsz.Meta.Size == 3 {
				leaders[jsz.Meta.Leader] = true
			} else {
				last = fmt.Sprintf("%s /jsz: %d %s %v", n.name, code, body, err)
				leaders[""] = true
			}
		}
		if len(leaders) == 1 && !leaders[""] {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no JetStream meta leader known to all 3 nodes 30s after start: %v; %s", sortedKeys(leaders), last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// urls lists every node, as each process is given them.
func (c *natsCluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, n.url())
	}
	return strings.Join(us, ",")
}

func (c *natsCluster) node(name string) *natsNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// client is one client connection as the monitoring endpoint shows it.
type client struct {
	Name string   `json:"name"`
	Subs []string `json:"subscriptions_list"`
}

// clients returns each node's client connections (from /connz), by node
// name.
func (c *natsCluster) clients(t *testing.T) map[string][]client {
	t.Helper()
	out := map[string][]client{}
	for _, n := range c.nodes {
		code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/connz?subs=1&limit=1024", n.monitorPort))
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s /connz: %d %v", n.name, code, err)
		}
		var connz struct {
			Connections []client `json:"connections"`
		}
		if err := json.Unmarshal(body, &connz); err != nil {
			t.Fatalf("%s /connz: %v", n.name, err)
		}
		out[n.name] = connz.Connections
	}
	return out
}

// connected returns the nodes on which a connection named name is, in
// node order.
func connected(clients map[string][]client, name string) []string {
	var nodes []string
	for node, cs := range clients {
		for _, c := range cs {
			if c.Name == name {
				nodes = append(nodes, node)
				break
			}
		}
	}
	sort.Strings(nodes)
	return nodes
}

// describe summarises who is connected where, e.g. "n1: gateway, router×2".
func describe(clients map[string][]client) string {
	var parts []string
	for _, node := range sortedKeys(clients) {
		count := map[string]int{}
		for _, c := range clients[node] {
			count[c.Name]++
		}
		var names []string
		for _, name := range sortedKeys(count) {
			if count[name] > 1 {
				names = append(names, fmt.Sprintf("%s×%d", name, count[name]))
			} else {
				names = append(names, name)
			}
		}
		parts = append(parts, node+": "+strings.Join(names, ", "))
	}
	return strings.Join(parts, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// streamInfo returns the inbound stream's info, asked through nc.
func streamInfo(nc *nats.Conn) (*jetstream.StreamInfo, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, durable.Stream)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// waitStream waits until the routers' inbound stream has a leader and its
// replicas are current, and returns the leader's name. It fails the test if
// the stream does not have 3 replicas.
func waitStream(t *testing.T, nc *nats.Conn) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := streamInfo(nc)
		if err == nil && info.Config.Replicas != 3 {
			t.Fatalf("stream %s has %d replicas, want 3 (--stream_replicas 3)", durable.Stream, info.Config.Replicas)
		}
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == 2 &&
			info.Cluster.Replicas[0].Current && info.Cluster.Replicas[1].Current {
			return info.Cluster.Leader
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s not led with 2 current replicas after 30s: %v %+v", durable.Stream, err, info)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// moveStreamLeader makes node the stream's leader (a leader step-down with
// a preferred placement), and waits until it is.
func moveStreamLeader(t *testing.T, nc *nats.Conn, node string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := streamInfo(nc)
		if err == nil && info.Cluster != nil && info.Cluster.Leader == node {
			return
		}
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": node}})
			if msg, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+durable.Stream, req, 5*time.Second); err != nil {
				t.Logf("stream leader step-down: %v", err)
			} else if !strings.Contains(string(msg.Data), `"success":true`) {
				t.Logf("stream leader step-down: %s", msg.Data)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("could not make %s the stream's leader within 20s (last: %v %+v)", node, err, info)
		}
		time.Sleep(time.Second)
	}
}

func httpGet(url string) (int, []byte, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	rsp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	return rsp.StatusCode, body, err
}

// startRouters starts router processes named names with args and waits
// until each has logged that it is ready (--log_level info). A router that
// exits while starting is logged and started again, twice at most: on a
// fresh 3-node cluster, creating the replicated streams can take longer
// than the 10 s a router gives it, and the fault under test is not the
// start-up.
func startRouters(t *testing.T, args []string, names ...string) []*proc {
	t.Helper()
	ps := make([]*proc, len(names))
	for i, name := range names {
		ps[i] = start(t, name, "router", nil, args...)
	}
	restarts := 0
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := 0
		for i, p := range ps {
			select {
			case <-p.done:
				if restarts == 2 {
					t.Fatalf("%s exited while starting, a third time: %v", p.name, p.err)
				}
				restarts++
				last := strings.TrimSpace(p.stderr.String())
				last = last[strings.LastIndexByte(last, '\n')+1:]
				t.Logf("SETUP: %s exited while starting (%v: %s); starting it again", p.name, p.err, last)
				ps[i] = start(t, p.name, "router", nil, args...)
				continue
			default:
			}
			if strings.Contains(p.stderr.String(), `msg="router ready"`) {
				ready++
			}
		}
		if ready == len(ps) {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d routers ready after 60s", ready, len(ps))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// faultService is a command served from the test process, joining the mesh
// through NATS. It answers "<command> ID" with "done ID" after sleep(ID),
// and counts how many times it ran each ID.
type faultService struct {
	sleep func(id string) time.Duration
	mu    sync.Mutex
	runs  map[string]int
	total int
}

func serveFaultCommand(t *testing.T, natsURL, name string, sleep func(id string) time.Duration) *faultService {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := meshtest.Mesh(t, nil, func(c *mesh.Config) {
		c.NATSURL = natsURL
		c.Name = "faults-service"
	}, mesh.WithLogger(log))
	f := &faultService{sleep: sleep, runs: map[string]int{}}
	svc, err := command.New(m, name, handler{usage: name + " ID", exec: f.exec})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	meshtest.WaitRegistered(t, m.Registry(), m.ServiceName(name), "")
	return f
}

func (f *faultService) exec(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	id := strings.Join(req.Args[1:], " ")
	f.mu.Lock()
	f.runs[id]++
	f.total++
	f.mu.Unlock()
	timer := time.NewTimer(f.sleep(id))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	rsp.Result = []byte("done " + id)
	return nil
}

// ran returns how many times the service ran id.
func (f *faultService) ran(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

func (f *faultService) runsSoFar() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// probe sends "<command> probe" until the mesh answers "done probe"
// (interim notices are skipped), so that a burst starts on a working mesh.
func probe(t *testing.T, sh *shell, command string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		sh.say(t, command+" probe")
		l := sh.line(t, 60*time.Second)
		for isInterim(l) {
			l = sh.line(t, 60*time.Second)
		}
		if l == "done probe" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered within %s: last line %q", command, within, l)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// isInterim reports whether a gateway line is an interim notice: a note
// that a final answer (the command's, or an error) is still to come.
func isInterim(l string) bool {
	return strings.HasPrefix(l, "queued:") || strings.HasPrefix(l, "not confirmed yet") || strings.HasPrefix(l, "working on it")
}

var doneLine = regexp.MustCompile(`^done (\S+)$`)

// burst tallies the answers to commands sent through shell gateways, as
// their users see them. Each command has an id; the service answers "done
// <id>", which is attributed by its id. The shell prints replies in the
// order of the lines they answer (interim notices of a line before its
// final reply), so any other line is attributed to the oldest command of
// that shell still without a final line: an interim notice ("queued:",
// "not confirmed yet", "working on it") is counted and allowed, anything
// else is an error answer, final. (A late reply, posted after the
// gateway's timeout notice, is printed at once; it is a "done" line, so
// still attributed by its id.)
type burst struct {
	name string

	mu       sync.Mutex
	ids      []string // in the order sent
	sentAt   map[string]time.Time
	shellOf  map[string]int
	pending  map[int][]string // by shell: ids without a final line, oldest first
	finals   map[string][]string
	finalAt  map[string]time.Time
	queuedAt map[string]time.Time // first "queued:" notice
	interim  int
	stray    []string // lines that could not be attributed
	sendErr  error
	lastLine time.Time
}

func newBurst(name string) *burst {
	return &burst{
		name:     name,
		sentAt:   map[string]time.Time{},
		shellOf:  map[string]int{},
		pending:  map[int][]string{},
		finals:   map[string][]string{},
		finalAt:  map[string]time.Time{},
		queuedAt: map[string]time.Time{},
	}
}

// send writes "<command> <id>" to the shell; it does not fail the test (it
// runs on a goroutine of its own) but records the first error.
func (b *burst) send(sh *shell, shellIdx int, command, id string) error {
	b.mu.Lock()
	b.ids = append(b.ids, id)
	b.sentAt[id] = time.Now()
	b.shellOf[id] = shellIdx
	b.pending[shellIdx] = append(b.pending[shellIdx], id)
	b.mu.Unlock()
	_, err := io.WriteString(sh.in, command+" "+id+"\n")
	if err != nil {
		b.mu.Lock()
		if b.sendErr == nil {
			b.sendErr = fmt.Errorf("write %q to the gateway: %w", id, err)
		}
		b.mu.Unlock()
	}
	return err
}

// sendSteady sends one command per id at a steady pace from a goroutine.
// marked is closed once mark of them are sent, done once all are.
func (b *burst) sendSteady(sh *shell, shellIdx int, command string, ids []string, every time.Duration, mark int) (marked, done <-chan struct{}) {
	m, d := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i, id := range ids {
			if i == mark {
				close(m)
			}
			if b.send(sh, shellIdx, command, id) != nil {
				break
			}
			<-tick.C
		}
		if mark >= len(ids) {
			close(m)
		}
	}()
	return m, d
}

// collect reads the shell's lines until it closes its output.
func (b *burst) collect(sh *shell, shellIdx int) {
	for l := range sh.lines {
		b.line(shellIdx, l, time.Now())
	}
}

func (b *burst) line(shellIdx int, l string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastLine = at
	var head string
	if p := b.pending[shellIdx]; len(p) > 0 {
		head = p[0]
	}
	if isInterim(l) {
		b.interim++
		if strings.HasPrefix(l, "queued:") && head != "" {
			if _, ok := b.queuedAt[head]; !ok {
				b.queuedAt[head] = at
			}
		}
		return
	}
	id := ""
	if m := doneLine.FindStringSubmatch(l); m != nil {
		if _, sent := b.sentAt[m[1]]; sent {
			id = m[1]
		}
	}
	if id == "" { // an error answer, for the oldest command waiting
		if head == "" {
			b.stray = append(b.stray, l)
			return
		}
		id = head
	}
	b.finals[id] = append(b.finals[id], l)
	if _, ok := b.finalAt[id]; !ok {
		b.finalAt[id] = at
	}
	p := b.pending[b.shellOf[id]]
	if i := slices.Index(p, id); i >= 0 {
		b.pending[b.shellOf[id]] = slices.Delete(p, i, i+1)
	}
}

// waitAnswered waits until n commands are sent and each has a final line,
// or within passes; it reports whether all were answered.
func (b *burst) waitAnswered(n int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		b.mu.Lock()
		all := len(b.ids) == n && len(b.finalAt) == n
		b.mu.Unlock()
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settle waits until notBefore, and then until neither the gateway printed
// a line nor the service ran a command for quiet (at most until limit from
// now): a redelivered command runs, and a second answer comes, after the
// first answer.
func (b *burst) settle(svc *faultService, notBefore time.Time, quiet, limit time.Duration) {
	end := time.Now().Add(limit)
	time.Sleep(time.Until(notBefore))
	runs, since := svc.runsSoFar(), time.Now()
	for time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
		b.mu.Lock()
		last := b.lastLine
		b.mu.Unlock()
		if r := svc.runsSoFar(); r != runs || last.After(since) {
			runs, since = r, time.Now()
		}
		if time.Since(since) >= quiet {
			return
		}
	}
}

// sentBetween counts the commands sent from from to to.
func (b *burst) sentBetween(from, to time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, at := range b.sentAt {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return n
}

// faultCounts are a burst's results.
type faultCounts struct {
	sent, right, errors, duplicates, lost, falseFailures, ranTwice, interim, stray int
	longest                                                                        time.Duration
	// Examples of each fault: ids with their lines.
	errorEx, duplicateEx, lostEx, falseEx, ranTwiceEx []string
}

func (c faultCounts) String() string {
	return fmt.Sprintf("sent=%d right=%d errors=%d duplicates=%d lost=%d false_failures=%d ran_twice=%d interim=%d stray=%d longest_wait=%s",
		c.sent, c.right, c.errors, c.duplicates, c.lost, c.falseFailures, c.ranTwice, c.interim, c.stray, c.longest.Round(100*time.Millisecond))
}

// counts classifies each command sent: right (one final line, its "done"),
// error answers, duplicates (more than one final line), lost (no final
// line), false failures (an error answer although the service ran it) and
// ran twice (the service ran it more than once).
func (b *burst) counts(svc *faultService) faultCounts {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := faultCounts{sent: len(b.ids), interim: b.interim, stray: len(b.stray)}
	example := func(list *[]string, id string) {
		if len(*list) < 5 {
			*list = append(*list, fmt.Sprintf("%s: %q (ran %d×)", id, b.finals[id], svc.ran(id)))
		}
	}
	for _, id := range b.ids {
		finals, runs := b.finals[id], svc.ran(id)
		if at, ok := b.finalAt[id]; ok {
			c.longest = max(c.longest, at.Sub(b.sentAt[id]))
		}
		errs := 0
		for _, l := range finals {
			if l != "done "+id {
				errs++
			}
		}
		c.errors += errs
		switch {
		case len(finals) == 0:
			c.lost++
			example(&c.lostEx, id)
		case len(finals) == 1 && errs == 0:
			c.right++
		}
		if errs > 0 {
			example(&c.errorEx, id)
		}
		if len(finals) > 1 {
			c.duplicates++
			example(&c.duplicateEx, id)
		}
		if errs > 0 && runs > 0 {
			c.falseFailures++
			example(&c.falseEx, id)
		}
		if runs > 1 {
			c.ranTwice++
			example(&c.ranTwiceEx, id)
		}
	}
	return c
}

// check prints the burst's counts on one line and fails the test, naming
// the wrong counts, unless nothing was lost, answered twice, falsely
// failed, run twice or left unattributed. With allRight every command must
// also have been answered right (no error answer at all).
func (b *burst) check(t *testing.T, svc *faultService, allRight bool) faultCounts {
	t.Helper()
	c := b.counts(svc)
	t.Logf("faults: %s %s", b.name, c)
	b.mu.Lock()
	sendErr, stray := b.sendErr, slices.Clone(b.stray)
	b.mu.Unlock()
	if c.errors > 0 {
		t.Logf("faults: %s: error answers, e.g. %s", b.name, strings.Join(c.errorEx, "; "))
	}
	var wrong []string
	add := func(bad bool, format string, args ...any) {
		if bad {
			wrong = append(wrong, fmt.Sprintf(format, args...))
		}
	}
	add(sendErr != nil, "sending failed: %v", sendErr)
	add(c.lost > 0, "lost=%d, want 0 (no final line; e.g. %s)", c.lost, strings.Join(c.lostEx, "; "))
	add(c.duplicates > 0, "duplicates=%d, want 0 (e.g. %s)", c.duplicates, strings.Join(c.duplicateEx, "; "))
	add(c.falseFailures > 0, "false_failures=%d, want 0 (an error answer for a command the service ran; e.g. %s)", c.falseFailures, strings.Join(c.falseEx, "; "))
	add(c.ranTwice > 0, "ran_twice=%d, want 0 (e.g. %s)", c.ranTwice, strings.Join(c.ranTwiceEx, "; "))
	add(c.stray > 0, "stray=%d, want 0 (lines when no command awaited an answer: %q)", c.stray, stray[:min(len(stray), 5)])
	add(allRight && c.right != c.sent, "right=%d, want %d (errors=%d; e.g. %s)", c.right, c.sent, c.errors, strings.Join(c.errorEx, "; "))
	if len(wrong) > 0 {
		t.Errorf("faults: %s: %s", b.name, strings.Join(wrong, "; "))
	}
	return c
}

// ids returns n command ids, from first on.
func ids(first, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(first + i)
	}
	return out
}

// workTime is how long the work command takes for an id: 20 to 50 ms,
// spread evenly and the same on every run.
func workTime(id string) time.Duration {
	h := 0
	for _, r := range id {
		h = h*31 + int(r)
	}
	if h < 0 {
		h = -h
	}
	return time.Duration(20+h%31) * time.Millisecond
}
