package deploy

// What a newcomer meets with deploy/kubernetes before anything runs: what
// runs by default reads no empty secret. The tests that run servers are
// kubernetes_probes_test.go (NATS).

import (
	"strings"
	"testing"
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
