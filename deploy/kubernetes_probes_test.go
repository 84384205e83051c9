package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The NATS StatefulSet's probes, asked of three real nats-server
// processes (built from the version deploy/go.mod pins, the one `make
// images` puts in botmesh/nats-server) that run the ConfigMap's nats.conf
// and permissions.conf unchanged but for the ports and the store
// directory, with the environment the kubelet gives each pod: Secret
// values, pod name, routes. The probes' paths, ports and timeouts are the
// manifest's. The nodes start one at a time, as they may on a cluster:
//
//   - nats-0 alone: startup and liveness succeed (the kubelet lets it
//     wait), readiness fails, and JetStream does not answer;
//   - nats-1 too: liveness still succeeds on both;
//   - all three: every probe succeeds on every node, and a stream with a
//     replica on each node takes a gateway's message;
//   - nats-1 and nats-2 stopped: nats-0 becomes not Ready, its liveness
//     still succeeds (a node that lost its peers is not killed);
//   - nats-1 back: both Ready again, the message still there.
func TestIntegrationKubernetesNATSProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server and runs three of them")
	}
	var sts appsv1.StatefulSet
	kubeDoc(t, "StatefulSet", "nats", &sts)
	var cm corev1.ConfigMap
	kubeDoc(t, "ConfigMap", "nats-config", &cm)
	secrets, configMaps := shipped(t, "")
	c := sts.Spec.Template.Spec.Containers[0]
	replicas := int(replicasOf(sts.Spec.Replicas))
	if replicas != 3 {
		t.Fatalf("%d NATS replicas; this test knows 3", replicas)
	}
	probes := map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
	portOf := func(name string) int32 {
		p := containerPort(c, name, 0)
		if p == 0 {
			t.Fatalf("the nats container has no port %q", name)
		}
		return p
	}
	clientPort, clusterPort, monitorPort := portOf("client"), portOf("cluster"), portOf("monitor")
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Fatalf("no HTTP %s probe", name)
		}
		// The test moves the monitoring port; the probes must ask it.
		if got := containerPort(c, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal); got != monitorPort {
			t.Fatalf("%s probe on port %s (%d), not the monitoring port %d", name, p.HTTPGet.Port.String(), got, monitorPort)
		}
	}
	// The container runs the ConfigMap's nats.conf, where it is mounted.
	confPath := ""
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				confPath = filepath.Join(m.MountPath, "nats.conf")
			}
		}
	}
	confArg := slices.Index(c.Args, confPath)
	if confPath == "" || confArg < 0 {
		t.Fatalf("nats runs %v, not the ConfigMap's nats.conf (%q)", c.Args, confPath)
	}

	bin := buildNATSServer(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "permissions.conf"), []byte(cm.Data["permissions.conf"]), 0o600); err != nil {
		t.Fatal(err)
	}

	// Each node's ports here, in place of the pod's.
	type ports struct{ client, cluster, monitor int }
	local := make([]ports, replicas)
	for i := range local {
		local[i] = ports{freePort(t), freePort(t), freePort(t)}
	}
	// The routes name each pod by its DNS name in the headless Service.
	podHost := regexp.MustCompile(fmt.Sprintf(`^nats-(\d+)\.%s\.%s\.svc:%d$`, regexp.QuoteMeta(sts.Spec.ServiceName), regexp.QuoteMeta(sts.Namespace), clusterPort))

	nodes := make([]*process, replicas)
	start := func(i int) {
		t.Helper()
		pod := fmt.Sprintf("nats-%d", i)
		env, err := containerEnv(c, pod, secrets, configMaps)
		if err != nil {
			t.Fatalf("%s: %v", pod, err)
		}
		var routed []int
		for k, v := range env {
			if !strings.HasPrefix(v, "nats-route://") {
				continue
			}
			u, err := url.Parse(v)
			if err != nil {
				t.Fatalf("%s: %s: %v", pod, k, err)
			}
			m := podHost.FindStringSubmatch(u.Host)
			if m == nil {
				t.Fatalf("%s: %s names %s, not a pod of service %s on port %d", pod, k, u.Host, sts.Spec.ServiceName, clusterPort)
			}
			n, _ := strconv.Atoi(m[1]) // digits
			if n >= replicas {
				t.Fatalf("%s: %s names %s, beyond the %d replicas", pod, k, u.Host, replicas)
			}
			routed = append(routed, n)
			u.Host = fmt.Sprintf("127.0.0.1:%d", local[n].cluster)
			env[k] = u.String()
		}
		slices.Sort(routed)
		if !slices.Equal(routed, []int{0, 1, 2}) {
			t.Fatalf("%s routes to nodes %v, want each of the 3", pod, routed)
		}
		conf := rewriteConf(t, cm.Data["nats.conf"], []confEdit{
			{fmt.Sprintf(`(?m)^port: %d$`, clientPort), fmt.Sprintf("port: %d", local[i].client)},
			{fmt.Sprintf(`(?m)^http_port: %d$`, monitorPort), fmt.Sprintf("http_port: %d", local[i].monitor)},
			{fmt.Sprintf(`(?m)^(\s+)port: %d$`, clusterPort), fmt.Sprintf("${1}port: %d", local[i].cluster)},
			{`(?m)^(\s+)store_dir: \S+$`, "${1}store_dir: " + filepath.Join(dir, pod+"-data", "jetstream")},
		})
		file := filepath.Join(dir, pod+".conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		args := slices.Clone(c.Args)
		args[confArg] = file
		p := startProcess(t, bin, pod, args, env)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s output:\n%s", pod, p.output())
			}
		})
		nodes[i] = p
	}
	// ask is the kubelet's HTTP probe of node i: success is 200 to 399.
	ask := func(i int, which string) (bool, string) {
		return httpProbe(probes[which], local[i].monitor)
	}
	// until waits, at most limit, for every node of on to pass the probes.
	until := func(limit time.Duration, on []int, which ...string) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			var failing []string
			for _, i := range on {
				for _, w := range which {
					if ok, what := ask(i, w); !ok {
						failing = append(failing, fmt.Sprintf("nats-%d %s: %s", i, w, what))
					}
				}
			}
			if len(failing) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("within %v: %s", limit, strings.Join(failing, "; "))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// alive checks, for the time given, that liveness never fails on the
	// nodes of on.
	alive := func(d time.Duration, on ...int) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			for _, i := range on {
				if ok, what := ask(i, "liveness"); !ok {
					t.Errorf("nats-%d: liveness failed: %s (the kubelet would restart it)", i, what)
					return
				}
			}
		}
	}
	routerPW := secrets["botmesh"].StringData["nats-password-router"]
	connect := func(i int, user, password string) *nats.Conn {
		t.Helper()
		nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", local[i].client), nats.UserInfo(user, password), nats.Timeout(5*time.Second))
		if err != nil {
			t.Fatalf("%s on nats-%d: %v", user, i, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}

	// nats-0 alone: started, alive, not Ready, no JetStream.
	began := time.Now()
	phase := func(what string) { t.Logf("%5.1fs %s", time.Since(began).Seconds(), what) }
	start(0)
	startBudget := time.Duration(c.StartupProbe.InitialDelaySeconds+c.StartupProbe.PeriodSeconds*max(c.StartupProbe.FailureThreshold, 1)) * time.Second
	until(min(startBudget, 30*time.Second), []int{0}, "startup")
	alive(4*time.Second, 0)
	if ok, what := ask(0, "readiness"); ok {
		t.Errorf("nats-0 alone is Ready (%s), yet it cannot serve JetStream", what)
	} else {
		t.Logf("nats-0 alone: readiness %s", what)
	}
	js, err := jetstream.New(connect(0, "router", routerPW))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = js.AccountInfo(ctx)
	cancel()
	if err == nil {
		t.Error("JetStream answers on nats-0 alone")
	}

	// Two of the three: still alive. (A new cluster elects its first
	// leader once all three run, so they are not Ready yet; that is
	// nats-server's choice, not this test's.)
	phase("nats-0 alone checked")
	start(1)
	until(30*time.Second, []int{1}, "startup")
	alive(3*time.Second, 0, 1)

	// All three: every probe passes, and a stream with a replica on each
	// node takes a message.
	start(2)
	until(60*time.Second, []int{0, 1, 2}, "startup", "liveness", "readiness")
	phase("all three Ready")
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: inStream, Subjects: []string{"bot.v1.in.>"}, Replicas: replicas})
	if err != nil {
		t.Fatalf("a stream with %d replicas: %v", replicas, err)
	}
	gw, err := jetstream.New(connect(2, "gateway-web", secrets["botmesh"].StringData["nats-password-gateway-web"]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Publish(ctx, "bot.v1.in.web", []byte("hello")); err != nil {
		t.Fatalf("a gateway's message into the stream: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != replicas-1 {
		t.Fatalf("stream cluster %+v: not on %d nodes", info.Cluster, replicas)
	}
	// Readiness now also asks about the stream's replica on each node.
	until(30*time.Second, []int{0, 1, 2}, "liveness", "readiness")

	// nats-1 and nats-2 stop: nats-0 is no longer Ready, and not killed.
	phase("stream on three nodes")
	nodes[1].stop(t)
	nodes[2].stop(t)
	phase("nats-1 and nats-2 stopped")
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready, what := ask(0, "readiness")
		if !ready {
			t.Logf("nats-0 without its peers: readiness %s", what)
			break
		}
		if ok, what := ask(0, "liveness"); !ok {
			t.Fatalf("nats-0 without its peers: liveness failed: %s", what)
		}
		if time.Now().After(deadline) {
			t.Fatal("nats-0 still Ready 60s after losing both peers")
		}
		time.Sleep(250 * time.Millisecond)
	}
	phase("nats-0 not Ready")
	alive(3*time.Second, 0)

	// nats-1 back, with its volume: both Ready, the message kept.
	start(1)
	until(60*time.Second, []int{0, 1}, "startup", "liveness", "readiness")
	phase("nats-0 and nats-1 Ready")
	// (Its stream may still be electing a leader: seen once for 10 s.)
	back := time.Now()
	for {
		ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
		info, err = stream.Info(ctx2)
		cancel2()
		if err == nil {
			break
		}
		if time.Since(back) > 60*time.Second {
			t.Fatalf("the stream after the restart: %v", err)
		}
	}
	phase(fmt.Sprintf("stream info after %.1fs", time.Since(back).Seconds()))
	if info.State.Msgs != 1 {
		t.Fatalf("the stream after the restart: %+v", info.State)
	}
}

// The NATS StatefulSet can form its cluster: its pods start together and
// find each other before they are Ready, its probes ask the monitoring
// port, and JetStream writes to the volume. (What the probes answer is
// kubernetes_probes_test.go's part.)
func TestKubernetesNATSStatefulSet(t *testing.T) {
	var sts appsv1.StatefulSet
	kubeDoc(t, "StatefulSet", "nats", &sts)
	var svc corev1.Service
	kubeDoc(t, "Service", sts.Spec.ServiceName, &svc)
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q: nats-1 is created only once nats-0 is Ready, which a lone node never is", sts.Spec.PodManagementPolicy)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("service %s: clusterIP %q, publishNotReadyAddresses %v: the nodes cannot find each other before they are Ready", svc.Name, svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	monitor := containerPort(c, "monitor", 0)
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		if got := containerPort(c, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal); got == 0 || got != monitor {
			t.Errorf("%s probe on port %v (%d), not the monitoring port %d", name, p.HTTPGet.Port.String(), got, monitor)
		}
	}
	var cm corev1.ConfigMap
	kubeDoc(t, "ConfigMap", "nats-config", &cm)
	store := regexp.MustCompile(`(?m)^\s*store_dir:\s*(\S+)$`).FindStringSubmatch(cm.Data["nats.conf"])
	var data string
	for _, m := range c.VolumeMounts {
		if m.Name == "data" {
			data = m.MountPath
		}
	}
	if store == nil || data == "" || !strings.HasPrefix(store[1], strings.TrimSuffix(data, "/")+"/") {
		t.Errorf("JetStream's store_dir %v is not on the data volume (mounted at %q)", store, data)
	}
}

// confEdit replaces what the regular expression re matches, exactly once,
// with the replacement repl (with $1 … from re).
type confEdit struct{ re, repl string }

func rewriteConf(t *testing.T, conf string, edits []confEdit) string {
	t.Helper()
	for _, e := range edits {
		re := regexp.MustCompile(e.re)
		if n := len(re.FindAllStringIndex(conf, -1)); n != 1 {
			t.Fatalf("nats.conf: %d lines match %s, want 1", n, e.re)
		}
		conf = re.ReplaceAllString(conf, e.repl)
	}
	return conf
}

// httpProbe asks what the kubelet's HTTP probe p asks (path, headers,
// timeout), of port on this machine in place of the pod's. It reports
// success (a status from 200 to 399) and the status and body, or the
// error.
func httpProbe(p *corev1.Probe, port int) (bool, string) {
	h := p.HTTPGet
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, h.Path), nil)
	if err != nil {
		return false, err.Error()
	}
	for _, hh := range h.HTTPHeaders {
		req.Header.Set(hh.Name, hh.Value)
	}
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer rsp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(rsp.Body, 512))
	return rsp.StatusCode >= 200 && rsp.StatusCode < 400, fmt.Sprintf("%d %s", rsp.StatusCode, bytes.TrimSpace(body))
}

// buildNATSServer builds nats-server from the version deploy/go.mod pins
// (go build caches it after the first run).
func buildNATSServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nats-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	return bin
}

// process is one running server (nats-server, gateway).
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProcess runs bin with args and env (added to this process's
// environment, without its BOTMESH_ variables); it is stopped at the end
// of the test.
func startProcess(t *testing.T, bin, name string, args []string, env map[string]string) *process {
	t.Helper()
	p := &process{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = podEnviron(env)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM, as the kubelet does, and waits for the process to
// end (killing it after 15 s). Stopping a stopped process does nothing.
func (p *process) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 15s of SIGTERM", p.name)
	}
}

// podEnviron is this process's environment without the BOTMESH_
// variables (other tests set some), with env added.
func podEnviron(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BOTMESH_") && !strings.HasPrefix(kv, "NATS_") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
