package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// The web chat as a browser reaches it on Kubernetes: the gateway binary
// run with the gateway-web Deployment's arguments and the environment the
// kubelet gives it (Secret, the optional ConfigMap of 30-ingress.yaml),
// connected to a NATS server with the manifests' passwords. (Only its
// ports are moved, and NATS is one server on this machine.)
//
//   - with 30-ingress.yaml applied, a request for each Ingress host, as
//     the Ingress forwards it (the browser's Host header kept), gets the
//     page, and the page's websocket opens and takes the Secret's token;
//     a host the Ingress does not serve is refused;
//   - without it (00 to 20 applied), the gateway starts all the same, and
//     answers port-forward's localhost, not the Ingress host.
func TestIntegrationKubernetesWebIngress(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	var d appsv1.Deployment
	kubeDoc(t, "Deployment", "gateway-web", &d)
	var ing networkingv1.Ingress
	kubeDoc(t, "Ingress", "gateway-web", &ing)
	var hosts []string
	for _, r := range ing.Spec.Rules {
		hosts = append(hosts, r.Host)
	}
	if len(hosts) == 0 {
		t.Fatal("the Ingress names no host")
	}
	secrets, all := shipped(t, "")
	_, core := shipped(t, "30-")
	sec := secrets["botmesh"].StringData

	// NATS with the Secret's passwords (the identities of the ConfigMap:
	// TestKubernetesNATSIdentities).
	t.Setenv("NATS_SERVER_NAME", "nats-0")
	for _, r := range natsRoles {
		t.Setenv(r.password, sec["nats-password-"+r.user])
	}
	s, _ := startNATS(t, "nats/nats.conf", nil)

	bin := buildGateway(t)
	c := d.Spec.Template.Spec.Containers[0]
	run := func(t *testing.T, name string, configMaps map[string]*corev1.ConfigMap) (web string) {
		t.Helper()
		env, err := containerEnv(c, "gateway-web-0", secrets, configMaps)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		env["BOTMESH_NATS_URL"] = s.ClientURL()
		// The ports, moved; the hosts (every interface) kept.
		admin := movePort(t, env["BOTMESH_ADMIN_ADDRESS"])
		env["BOTMESH_ADMIN_ADDRESS"] = admin
		args := slices.Clone(c.Args)
		i := slices.Index(args, "--web_address")
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("gateway-web runs %v: no --web_address", args)
		}
		args[i+1] = movePort(t, args[i+1])
		p := startProcess(t, bin, name, args, env)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s output:\n%s", name, p.output())
			}
		})
		// Ready, by the Deployment's own probe.
		_, adminPort, _ := net.SplitHostPort(admin)
		port, err := strconv.Atoi(adminPort)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			select {
			case <-p.done:
				t.Fatalf("%s exited (the pod would crash-loop)", name)
			default:
			}
			ok, what := httpProbe(c.ReadinessProbe, port)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not Ready within 30s: %s", name, what)
			}
			time.Sleep(200 * time.Millisecond)
		}
		_, webPort, _ := net.SplitHostPort(args[i+1])
		return "127.0.0.1:" + webPort
	}
	// get asks for the page as the Ingress (or port-forward) forwards the
	// browser's request: to the pod, with the browser's Host header.
	get := func(t *testing.T, web, host string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+web+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		cl := http.Client{Timeout: 10 * time.Second}
		rsp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("GET / for %s: %v", host, err)
		}
		defer rsp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(rsp.Body, 1<<16))
		return rsp.StatusCode, string(b)
	}

	t.Run("with 30-ingress.yaml", func(t *testing.T) {
		web := run(t, "gateway-web", all)
		for _, h := range hosts {
			if code, body := get(t, web, h); code != http.StatusOK || !strings.Contains(body, "<html") {
				t.Errorf("the page for %s: %d %.200s", h, code, body)
			}
			for _, origin := range []string{"https://" + h, "http://" + h} {
				hdr := http.Header{"Host": {h}, "Origin": {origin}}
				dialer := websocket.Dialer{Subprotocols: []string{"botmesh.web.v1"}, HandshakeTimeout: 10 * time.Second}
				ws, rsp, err := dialer.Dial("ws://"+web+"/ws", hdr)
				if err != nil {
					code := 0
					if rsp != nil {
						code = rsp.StatusCode
					}
					t.Errorf("websocket for %s from %s: %v (%d)", h, origin, err, code)
					continue
				}
				_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				if err := ws.WriteJSON(map[string]string{"type": "hello", "token": sec["web-token"]}); err != nil {
					t.Fatal(err)
				}
				var f struct{ Type, Code, Message string }
				_, msg, err := ws.ReadMessage()
				if err == nil {
					err = json.Unmarshal(msg, &f)
				}
				if err != nil || f.Type != "welcome" {
					t.Errorf("hello with the Secret's web-token, for %s: %v %s", h, err, msg)
				}
				_ = ws.Close()
			}
		}
		if code, _ := get(t, web, "elsewhere.example.net"); code != http.StatusMisdirectedRequest {
			t.Errorf("a host the Ingress does not serve: %d, want 421", code)
		}
	})

	t.Run("without 30-ingress.yaml", func(t *testing.T) {
		web := run(t, "gateway-web-core", core)
		if code, _ := get(t, web, "localhost:8080"); code != http.StatusOK {
			t.Errorf("port-forward's http://localhost:8080/: %d", code)
		}
		for _, h := range hosts {
			if code, _ := get(t, web, h); code != http.StatusMisdirectedRequest {
				t.Errorf("%s without its ConfigMap: %d, want 421", h, code)
			}
		}
	})
}

// movePort returns host:port with a free port of this machine in place
// of the port of addr (its host, maybe empty for every interface, kept).
func movePort(t *testing.T, addr string) string {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return net.JoinHostPort(host, fmt.Sprint(freePort(t)))
}

// buildGateway builds the gateway binary from this repository's workspace.
func buildGateway(t *testing.T) string {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	cmd := exec.Command("go", "build", "-o", bin, "./gateway/cmd/gateway")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(repo, "go.work"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build gateway: %v\n%s", err, out)
	}
	return bin
}
