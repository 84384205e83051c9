package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// secrets are the variables .env sets, each with a value of its own.
var secrets = func() map[string]string {
	m := map[string]string{"BOTMESH_WEB_TOKEN": "t", routePassword: "p-route"}
	for _, r := range natsRoles {
		m[r.password] = "p-" + r.user
	}
	return m
}()

// natsUsers says which NATS user each part of compose and Kubernetes is.
var natsUsers = map[string]string{
	"router":        "router",
	"gateway-web":   "gateway-web",
	"gateway-slack": "gateway-slack",
	"echo":          "service",
	"registry-cmd":  "service",
	"query":         "service",
	"greeter":       "service",
	"note":          "service-note",
	"uptime":        "service",
}

// roleOf returns the role of NATS user.
func roleOf(t *testing.T, user string) natsRole {
	t.Helper()
	for _, r := range natsRoles {
		if r.user == user {
			return r
		}
	}
	t.Fatalf("no NATS role %q", user)
	return natsRole{}
}

func loadCompose(t *testing.T, env map[string]string, files ...string) (*types.Project, error) {
	t.Helper()
	var cfgs []types.ConfigFile
	for _, f := range files {
		cfgs = append(cfgs, types.ConfigFile{Filename: filepath.Join("..", f)})
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  "..",
		ConfigFiles: cfgs,
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("botmesh", true) })
}

// The compose file loads with the loader compose v2 uses, and says what the
// environment needs: health checks, restart policies, limits, JetStream,
// authentication, the Slack gateway behind its profile.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("\nname:")) {
		t.Error("a top-level name: docker-compose 1.29 rejects it")
	}
	p, err := loadCompose(t, secrets, "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"echo", "frontdoor", "gateway-web", "greeter", "nats", "note", "query", "registry-cmd", "router"}
	if got := p.ServiceNames(); !slices.Equal(got, want) {
		t.Errorf("services %v, want %v (gateway-slack only with its profile)", got, want)
	}
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, "botmesh/") {
			t.Errorf("%s: image %q is not one of ours (nothing can be pulled)", name, s.Image)
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.HealthCheck.Test[1] != "/usr/local/bin/healthcheck" {
			t.Errorf("%s: health check %+v", name, s.HealthCheck)
		}
		if s.Restart != "unless-stopped" {
			t.Errorf("%s: restart %q", name, s.Restart)
		}
		if s.MemLimit == 0 {
			t.Errorf("%s: no memory limit", name)
		}
		if name == "frontdoor" {
			// No NATS: it proxies to the web gateways, once one is healthy,
			// and publishes the environment's only web port.
			if _, ok := s.Environment["BOTMESH_NATS_USER"]; ok {
				t.Error("frontdoor: has a NATS identity")
			}
			if d, ok := s.DependsOn["gateway-web"]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Error("frontdoor: does not wait for a healthy web gateway")
			}
			if len(s.Ports) != 1 || s.Ports[0].Target != 8080 || s.Ports[0].Published != "8080" || s.Ports[0].HostIP != "127.0.0.1" {
				t.Errorf("frontdoor: ports %+v, want 127.0.0.1:8080:8080", s.Ports)
			}
			continue
		}
		if len(s.Ports) > 0 && name != "nats" {
			t.Errorf("%s: publishes %+v; the web chat's only port is the front door's", name, s.Ports)
		}
		if name == "nats" {
			for _, r := range natsRoles {
				if v := s.Environment[r.password]; v == nil || *v != secrets[r.password] {
					t.Errorf("nats: %s is %v, want the one of .env", r.password, v)
				}
			}
			continue
		}
		// Each part is its role's NATS user, with that role's password.
		role := roleOf(t, natsUsers[name])
		if u := s.Environment["BOTMESH_NATS_USER"]; u == nil || *u != role.user {
			t.Errorf("%s: NATS user %v, want %s", name, u, role.user)
		}
		if pw := s.Environment["BOTMESH_NATS_PASSWORD"]; pw == nil || *pw != secrets[role.password] {
			t.Errorf("%s: NATS password %v, want %s's", name, pw, role.password)
		}
		if d, ok := s.DependsOn["nats"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: does not wait for a healthy NATS", name)
		}
	}
	if p.Services["router"].Scale == nil || *p.Services["router"].Scale < 2 {
		t.Error("fewer than 2 routers")
	}
	if !slices.Contains(p.Services["nats"].Command, "/etc/botmesh/nats.conf") {
		t.Error("nats does not use deploy/nats/nats.conf")
	}

	// The Slack gateway comes with its profile.
	p, err = loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir: "..", ConfigFiles: []types.ConfigFile{{Filename: "../docker-compose.yml"}}, Environment: secrets,
	}, func(o *loader.Options) { o.SetProjectName("botmesh", true); o.Profiles = []string{"slack"} })
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := p.Services["gateway-slack"]; !ok {
		t.Error("no gateway-slack with --profile slack")
	} else if u := g.Environment["BOTMESH_NATS_USER"]; u == nil || *u != "gateway-slack" || *g.Environment["BOTMESH_NATS_PASSWORD"] != secrets["BOTMESH_NATS_PASSWORD_GATEWAY_SLACK"] {
		t.Errorf("gateway-slack: NATS user %v", u)
	}

	// A command service added as the README says: the service identity.
	p, err = loadCompose(t, secrets, "docker-compose.yml", "deploy/testdata/uptime.yml")
	if err != nil {
		t.Fatal(err)
	}
	if u := p.Services["uptime"].Environment["BOTMESH_NATS_USER"]; u == nil || *u != "service" || *p.Services["uptime"].Environment["BOTMESH_NATS_PASSWORD"] != secrets["BOTMESH_NATS_PASSWORD_SERVICE"] {
		t.Errorf("uptime: NATS user %v", u)
	}

	// Without the secrets it refuses to start, saying which is missing.
	// (Which missing secret compose names first varies from run to run.)
	if _, err := loadCompose(t, map[string]string{}, "docker-compose.yml"); err == nil || !strings.Contains(err.Error(), "is missing a value: set BOTMESH_") {
		t.Errorf("without secrets: %v", err)
	}
	for _, r := range natsRoles {
		env := maps.Clone(secrets)
		delete(env, r.password)
		if r.user == "gateway-slack" {
			continue // only with its profile
		}
		if _, err := loadCompose(t, env, "docker-compose.yml"); err == nil || !strings.Contains(err.Error(), r.password) {
			t.Errorf("without %s: %v", r.password, err)
		}
	}
}

func TestComposeClusterFile(t *testing.T) {
	p, err := loadCompose(t, secrets, "docker-compose.yml", "docker-compose.cluster.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"nats", "nats-2", "nats-3"} {
		s, ok := p.Services[n]
		if !ok || !slices.Contains(s.Command, "/etc/botmesh/cluster.conf") {
			t.Errorf("%s: not a cluster node (%v)", n, s.Command)
		}
	}
	for name, s := range p.Services {
		if strings.HasPrefix(name, "nats") || name == "frontdoor" {
			continue
		}
		url := s.Environment["BOTMESH_NATS_URL"]
		if url == nil || strings.Count(*url, "nats://") != 3 {
			t.Errorf("%s: NATS URL %v does not list the 3 nodes", name, url)
		}
	}
	if r := p.Services["router"].Environment["BOTMESH_STREAM_REPLICAS"]; r == nil || *r != "3" {
		t.Error("the routers' stream is not replicated 3 times")
	}
	// The nodes: every identity, and routes that carry the routes'
	// credentials to each node.
	for _, n := range []string{"nats", "nats-2", "nats-3"} {
		env := p.Services[n].Environment
		for _, r := range natsRoles {
			if v := env[r.password]; v == nil || *v != secrets[r.password] {
				t.Errorf("%s: %s is %v", n, r.password, v)
			}
		}
		if v := env[routePassword]; v == nil || *v != "p-route" {
			t.Errorf("%s: %s is %v", n, routePassword, v)
		}
		if v := env["NATS_SERVER_NAME"]; v == nil || *v != n {
			t.Errorf("%s: NATS_SERVER_NAME %v", n, v)
		}
		for i, peer := range []string{"nats", "nats-2", "nats-3"} {
			want := "nats-route://route:p-route@" + peer + ":6222"
			if v := env[fmt.Sprintf("BOTMESH_NATS_ROUTE_%d", i+1)]; v == nil || *v != want {
				t.Errorf("%s: BOTMESH_NATS_ROUTE_%d is %v, want %s", n, i+1, v, want)
			}
		}
	}
	// Each part keeps its identity under the cluster's URL.
	for name, s := range p.Services {
		if u, ok := natsUsers[name]; ok && (s.Environment["BOTMESH_NATS_USER"] == nil || *s.Environment["BOTMESH_NATS_USER"] != u) {
			t.Errorf("%s: NATS user %v in the cluster", name, s.Environment["BOTMESH_NATS_USER"])
		}
	}
	env := maps.Clone(secrets)
	delete(env, routePassword)
	if _, err := loadCompose(t, env, "docker-compose.yml", "docker-compose.cluster.yml"); err == nil || !strings.Contains(err.Error(), routePassword) {
		t.Errorf("without %s: %v", routePassword, err)
	}
}

// Every Kubernetes manifest decodes strictly into the API types: a field
// the API does not know is an error, not a silent no-op.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	deployments := map[string]*appsv1.Deployment{}
	secretKeys := map[string]bool{}
	var kinds []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(b), "\n---\n") {
			var meta struct{ Kind string }
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s doc %d: %v", f, i, err)
			}
			var obj any
			switch meta.Kind {
			case "Namespace":
				obj = &corev1.Namespace{}
			case "Secret":
				obj = &corev1.Secret{}
			case "ConfigMap":
				obj = &corev1.ConfigMap{}
			case "Service":
				obj = &corev1.Service{}
			case "StatefulSet":
				obj = &appsv1.StatefulSet{}
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "Ingress":
				obj = &networkingv1.Ingress{}
			default:
				t.Fatalf("%s doc %d: unexpected kind %q", f, i, meta.Kind)
			}
			if err := strictDecode([]byte(doc), obj); err != nil {
				t.Errorf("%s doc %d (%s): %v", f, i, meta.Kind, err)
				continue
			}
			kinds = append(kinds, meta.Kind)
			switch o := obj.(type) {
			case *appsv1.Deployment:
				deployments[o.Name] = o
			case *corev1.Secret:
				for k := range o.StringData {
					secretKeys[k] = true
				}
			}
		}
	}
	for _, k := range []string{"Namespace", "Secret", "StatefulSet", "Deployment", "Service", "ConfigMap", "Ingress"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s", k)
		}
	}
	for _, name := range []string{"router", "gateway-web", "gateway-slack", "echo", "registry-cmd", "query", "greeter"} {
		d, ok := deployments[name]
		if !ok {
			t.Errorf("no deployment %s", name)
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: readiness probe is not /healthz", name)
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !secretKeys[e.ValueFrom.SecretKeyRef.Key] {
				t.Errorf("%s: %s refers to secret key %q, which the secret does not have", name, e.Name, e.ValueFrom.SecretKeyRef.Key)
			}
		}
	}
	for _, name := range []string{"router", "gateway-web"} {
		if d := deployments[name]; d != nil && (d.Spec.Replicas == nil || *d.Spec.Replicas < 2) {
			t.Errorf("%s: fewer than 2 replicas", name)
		}
	}
}

// strictDecode decodes YAML into obj, refusing unknown fields.
func strictDecode(doc []byte, obj any) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(obj)
}
