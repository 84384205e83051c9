package deploy

// What a newcomer meets with deploy/kubernetes before anything runs: the
// images the manifests name are the ones `make images` builds and the
// README loads into kind or k3s; what runs by default reads no empty
// secret; the web chat's Ingress reaches the web gateway's port. The
// tests that run servers are kubernetes_probes_test.go (NATS) and
// kubernetes_web_test.go (the web gateway behind the Ingress).

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Optional parts are off until configured: with the files as shipped,
// everything that runs starts with every value it reads (a Secret value
// that is empty is how gateway-slack crash-looped), and the Slack gateway
// does not run, with a comment saying how to turn it on. Without the
// optional 30-ingress.yaml nothing waits for its ConfigMap either.
func TestKubernetesOptionalPartsOff(t *testing.T) {
	all := workloads(t)
	secrets, cms := shipped(t, "")
	_, coreCMs := shipped(t, "30-")

	slack, ok := all["gateway-slack"]
	if !ok {
		t.Fatal("no gateway-slack")
	}
	if slack.replicas != 0 {
		t.Errorf("gateway-slack runs %d replicas with the shipped Secret", slack.replicas)
	}
	for _, want := range []string{"slack-app-token", "slack-bot-token", "kubectl -n botmesh scale deployment/gateway-slack --replicas="} {
		if !strings.Contains(slack.doc.text, want) {
			t.Errorf("gateway-slack's comment does not say how to turn it on (no %q)", want)
		}
	}

	for name, w := range all {
		for _, c := range w.pod.Containers {
			env, err := containerEnv(c, name+"-0", secrets, cms)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			var empty []string
			for _, e := range c.Env {
				if v, ok := env[e.Name]; ok && v == "" && e.ValueFrom != nil {
					empty = append(empty, e.Name)
				}
			}
			switch {
			case w.replicas > 0 && len(empty) > 0:
				t.Errorf("%s runs %d replicas and reads empty values: %v", name, w.replicas, empty)
			case name == "gateway-slack" && len(empty) == 0:
				// The shipped Secret's empty Slack tokens, seen: this
				// test does see the values a container reads.
				t.Errorf("gateway-slack reads no empty value, yet the shipped Slack tokens are empty")
			}
			if _, err := containerEnv(c, name+"-0", secrets, coreCMs); err != nil {
				t.Errorf("%s without 30-ingress.yaml: %v", name, err)
			}
		}
	}
}

// imagesBuilt returns the images deploy/images.sh builds by default: one
// per entry of its bins table, with its default tag.
func imagesBuilt(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("images.sh")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	tag := regexp.MustCompile(`(?m)^tag="\$\{1:-([^}]+)\}"$`).FindStringSubmatch(src)
	table := regexp.MustCompile(`(?s)declare -A bins=\((.*?)\n\)`).FindStringSubmatch(src)
	if tag == nil || table == nil {
		t.Fatal("images.sh: no default tag or no bins table")
	}
	var images []string
	for _, m := range regexp.MustCompile(`\[([a-z0-9-]+)\]=`).FindAllStringSubmatch(table[1], -1) {
		images = append(images, "botmesh/"+m[1]+":"+tag[1])
	}
	return images
}

// readmeCommands returns the shell command lines of deploy/kubernetes/
// README.md that start with prefix, continuation lines joined.
func readmeCommands(t *testing.T, prefix string) []string {
	t.Helper()
	b, err := os.ReadFile("kubernetes/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, prefix) {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return out
}

// The manifests run the images `make images` builds, never pull them, and
// the README's commands load exactly those images into kind and k3s.
func TestKubernetesImages(t *testing.T) {
	built := imagesBuilt(t)
	var used []string
	for name, w := range workloads(t) {
		for _, c := range w.pod.Containers {
			if !slices.Contains(built, c.Image) {
				t.Errorf("%s: image %s is not one `make images` builds (%v)", name, c.Image, built)
			}
			if c.ImagePullPolicy != corev1.PullIfNotPresent && c.ImagePullPolicy != corev1.PullNever {
				t.Errorf("%s: imagePullPolicy %q: a loaded image must not be pulled", name, c.ImagePullPolicy)
			}
			if !slices.Contains(used, c.Image) {
				used = append(used, c.Image)
			}
		}
	}
	slices.Sort(used)

	imagesIn := func(cmd string) []string {
		var out []string
		for _, f := range strings.Fields(cmd) {
			if strings.HasPrefix(f, "botmesh/") {
				out = append(out, f)
			}
		}
		slices.Sort(out)
		return out
	}
	kind := readmeCommands(t, "kind load docker-image ")
	if len(kind) != 1 {
		t.Fatalf("README: %d `kind load docker-image` commands, want 1", len(kind))
	}
	if got := imagesIn(kind[0]); !slices.Equal(got, used) {
		t.Errorf("README's kind command loads %v, the manifests use %v", got, used)
	}
	k3s := readmeCommands(t, "docker save ")
	if len(k3s) != 1 || !strings.HasSuffix(k3s[0], " | sudo k3s ctr images import -") {
		t.Fatalf("README: want one `docker save … | sudo k3s ctr images import -`, have %q", k3s)
	}
	if got := imagesIn(k3s[0]); !slices.Equal(got, used) {
		t.Errorf("README's k3s command imports %v, the manifests use %v", got, used)
	}
}

// The README applies every file of deploy/kubernetes, in the order of
// their names (namespace, Secret, NATS, the mesh, the optional Ingress).
func TestKubernetesReadmeApplyOrder(t *testing.T) {
	files, _ := filepath.Glob("kubernetes/*.yaml")
	var want []string
	for _, f := range files {
		want = append(want, "kubectl apply -f deploy/kubernetes/"+filepath.Base(f))
	}
	var got []string
	for _, c := range readmeCommands(t, "kubectl apply -f ") {
		c, _, _ = strings.Cut(c, " #")
		if !slices.Contains(got, c) {
			got = append(got, c)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("README applies\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The Ingress reaches the web gateway's port: its backend is the Service
// of the web gateway, whose port leads to the port --web_address listens
// on; and each host it serves is one the gateway is told to answer to.
func TestKubernetesWebIngress(t *testing.T) {
	var ing networkingv1.Ingress
	kubeDoc(t, "Ingress", "gateway-web", &ing)
	var hostCM corev1.ConfigMap
	kubeDoc(t, "ConfigMap", "gateway-web-host", &hostCM)
	allowed := strings.Split(hostCM.Data["allowed-hosts"], ",")
	for i := range allowed {
		allowed[i] = strings.TrimSpace(allowed[i])
	}
	if len(ing.Spec.Rules) == 0 {
		t.Fatal("the Ingress has no rules")
	}
	for _, r := range ing.Spec.Rules {
		if !slices.Contains(allowed, r.Host) {
			t.Errorf("Ingress host %q is not in the ConfigMap's allowed-hosts %v (the gateway would answer 421)", r.Host, allowed)
		}
		if r.HTTP == nil || len(r.HTTP.Paths) == 0 {
			t.Errorf("host %q: no paths", r.Host)
			continue
		}
		for _, p := range r.HTTP.Paths {
			if p.Path != "/" || p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix {
				t.Errorf("host %q: path %q: the page and its websocket /ws need all of /", r.Host, p.Path)
			}
			be := p.Backend.Service
			if be == nil {
				t.Errorf("host %q: no service backend", r.Host)
				continue
			}
			var svc corev1.Service
			kubeDoc(t, "Service", be.Name, &svc)
			var d appsv1.Deployment
			kubeDoc(t, "Deployment", svc.Spec.Selector["app.kubernetes.io/name"], &d)
			if d.Spec.Template.Labels["app.kubernetes.io/name"] != svc.Spec.Selector["app.kubernetes.io/name"] {
				t.Fatalf("service %s selects %v, deployment %s's pods are %v", svc.Name, svc.Spec.Selector, d.Name, d.Spec.Template.Labels)
			}
			c := d.Spec.Template.Spec.Containers[0]
			var target int32
			for _, sp := range svc.Spec.Ports {
				if be.Port.Name != "" && sp.Name == be.Port.Name || be.Port.Name == "" && sp.Port == be.Port.Number {
					target = containerPort(c, sp.TargetPort.StrVal, sp.TargetPort.IntVal)
				}
			}
			i := slices.Index(c.Args, "--web_address")
			if i < 0 || i+1 >= len(c.Args) {
				t.Fatalf("%s: no --web_address in %v", d.Name, c.Args)
			}
			if target == 0 || !strings.HasSuffix(c.Args[i+1], fmt.Sprintf(":%d", target)) {
				t.Errorf("Ingress → service %s port %+v → container port %d; the gateway listens on %s", svc.Name, be.Port, target, c.Args[i+1])
			}
		}
	}
}
