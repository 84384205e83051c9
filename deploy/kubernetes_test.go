package deploy

// What a newcomer meets with deploy/kubernetes before anything runs: what
// runs by default reads no empty secret; the web chat's Ingress reaches
// the web gateway's port. The tests that run servers are
// kubernetes_probes_test.go (NATS) and kubernetes_web_test.go (the web
// gateway behind the Ingress).

import (
	"fmt"
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
