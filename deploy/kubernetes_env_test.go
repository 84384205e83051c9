package deploy

// How the manifests' pods would start: their documents, their replicas,
// and the environment the kubelet gives their containers.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// kubeDocument is one YAML document of deploy/kubernetes.
type kubeDocument struct {
	file, kind, name string
	text             string
}

// kubeDocuments returns every document of deploy/kubernetes, in the order
// `kubectl apply -f deploy/kubernetes/` applies them (file names sorted).
func kubeDocuments(t *testing.T) []kubeDocument {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var docs []kubeDocument
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range strings.Split(string(b), "\n---\n") {
			var meta struct {
				Kind     string
				Metadata struct{ Name string }
			}
			if err := yaml.Unmarshal([]byte(text), &meta); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			docs = append(docs, kubeDocument{file: filepath.Base(f), kind: meta.Kind, name: meta.Metadata.Name, text: text})
		}
	}
	return docs
}

// workloads returns the pod templates of every Deployment and StatefulSet
// by name, with the replicas each runs once applied.
func workloads(t *testing.T) map[string]workload {
	t.Helper()
	out := map[string]workload{}
	for _, d := range kubeDocuments(t) {
		switch d.kind {
		case "Deployment":
			var o appsv1.Deployment
			if err := strictDecode([]byte(d.text), &o); err != nil {
				t.Fatalf("%s %s: %v", d.file, d.name, err)
			}
			out[o.Name] = workload{d, replicasOf(o.Spec.Replicas), o.Spec.Template.Spec}
		case "StatefulSet":
			var o appsv1.StatefulSet
			if err := strictDecode([]byte(d.text), &o); err != nil {
				t.Fatalf("%s %s: %v", d.file, d.name, err)
			}
			out[o.Name] = workload{d, replicasOf(o.Spec.Replicas), o.Spec.Template.Spec}
		}
	}
	return out
}

type workload struct {
	doc      kubeDocument
	replicas int32
	pod      corev1.PodSpec
}

// replicasOf is the API's default: 1 when not given.
func replicasOf(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// envRef is a value the kubelet looks up when it starts a container.
var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// containerEnv returns the environment the kubelet gives container c of
// the pod named pod: plain values with $(VAR) replaced by a variable
// defined before it, Secret and ConfigMap keys (an optional key that is
// missing leaves the variable unset), and the pod's name. An error is
// what the kubelet reports as CreateContainerConfigError.
func containerEnv(c corev1.Container, pod string, secrets map[string]*corev1.Secret, configMaps map[string]*corev1.ConfigMap) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = envRef.ReplaceAllStringFunc(e.Value, func(m string) string {
				if v, ok := env[envRef.FindStringSubmatch(m)[1]]; ok {
					return v
				}
				return m // as the kubelet leaves it
			})
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			s := secrets[r.Name]
			v, ok := "", false
			if s != nil {
				v, ok = s.StringData[r.Key]
			}
			switch {
			case ok:
				env[e.Name] = v
			case r.Optional == nil || !*r.Optional:
				return nil, fmt.Errorf("%s: secret %q has no key %q", e.Name, r.Name, r.Key)
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			cm := configMaps[r.Name]
			v, ok := "", false
			if cm != nil {
				v, ok = cm.Data[r.Key]
			}
			switch {
			case ok:
				env[e.Name] = v
			case r.Optional == nil || !*r.Optional:
				return nil, fmt.Errorf("%s: configmap %q has no key %q", e.Name, r.Name, r.Key)
			}
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = pod
		default:
			return nil, fmt.Errorf("%s: a value this test does not resolve: %+v", e.Name, e.ValueFrom)
		}
	}
	return env, nil
}

// shipped returns the Secrets and ConfigMaps of the manifests, by name,
// from the files whose names sort before upTo ("" for all of them).
func shipped(t *testing.T, upTo string) (map[string]*corev1.Secret, map[string]*corev1.ConfigMap) {
	t.Helper()
	secrets, cms := map[string]*corev1.Secret{}, map[string]*corev1.ConfigMap{}
	for _, d := range kubeDocuments(t) {
		if upTo != "" && d.file >= upTo {
			continue
		}
		switch d.kind {
		case "Secret":
			var s corev1.Secret
			if err := strictDecode([]byte(d.text), &s); err != nil {
				t.Fatal(err)
			}
			secrets[s.Name] = &s
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := strictDecode([]byte(d.text), &cm); err != nil {
				t.Fatal(err)
			}
			cms[cm.Name] = &cm
		}
	}
	return secrets, cms
}

// containerPort returns the number of the container port a probe or a
// Service names (by name or number); 0 if the container has no such port.
func containerPort(c corev1.Container, name string, number int32) int32 {
	for _, p := range c.Ports {
		if name != "" && p.Name == name || name == "" && p.ContainerPort == number {
			return p.ContainerPort
		}
	}
	return 0
}
