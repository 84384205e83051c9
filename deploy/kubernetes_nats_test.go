package deploy

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// kubeDoc decodes (strictly) the document of kind and name from the
// manifests into obj.
func kubeDoc(t *testing.T, kind, name string, obj any) {
	t.Helper()
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---\n") {
			if !regexp.MustCompile(`(?m)^kind: `+kind+`$`).MatchString(doc) || !regexp.MustCompile(`(?m)^  name: `+regexp.QuoteMeta(name)+`$`).MatchString(doc) {
				continue
			}
			if err := strictDecode([]byte(doc), obj); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return
		}
	}
	t.Fatalf("no %s %s in kubernetes/", kind, name)
}

// Kubernetes has the identities of compose: each Deployment is its role's
// NATS user with its role's password from the Secret, and the NATS
// StatefulSet runs cluster.conf's configuration with permissions.conf as
// it is, every password and the routes' credentials from the Secret.
func TestKubernetesNATSIdentities(t *testing.T) {
	var secret corev1.Secret
	kubeDoc(t, "Secret", "botmesh", &secret)
	for name, user := range natsUsers {
		if name == "uptime" {
			continue
		}
		var d appsv1.Deployment
		kubeDoc(t, "Deployment", name, &d)
		env := map[string]corev1.EnvVar{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e
		}
		if env["BOTMESH_NATS_USER"].Value != user {
			t.Errorf("%s: NATS user %q, want %s", name, env["BOTMESH_NATS_USER"].Value, user)
		}
		if pw := env["BOTMESH_NATS_PASSWORD"].ValueFrom; pw == nil || pw.SecretKeyRef == nil || pw.SecretKeyRef.Key != "nats-password-"+user {
			t.Errorf("%s: NATS password from %+v, want secret key nats-password-%s", name, pw, user)
		}
	}

	var cm corev1.ConfigMap
	kubeDoc(t, "ConfigMap", "nats-config", &cm)
	perms, err := os.ReadFile("nats/permissions.conf")
	if err != nil {
		t.Fatal(err)
	}
	// (The document split at "---" loses the block's final line break.)
	if strings.TrimRight(cm.Data["permissions.conf"], "\n") != strings.TrimRight(string(perms), "\n") {
		t.Fatal("the ConfigMap's permissions.conf differs from deploy/nats/permissions.conf")
	}
	dir := t.TempDir()
	for k, v := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The StatefulSet's environment, as the kubelet makes it: Secret
	// values, and $(VAR) references to variables defined before.
	var sts appsv1.StatefulSet
	kubeDoc(t, "StatefulSet", "nats", &sts)
	c := sts.Spec.Template.Spec.Containers[0]
	if !strings.Contains(strings.Join(c.Args, " "), "/etc/nats/nats.conf") {
		t.Errorf("nats runs %v", c.Args)
	}
	vars := map[string]string{}
	ref := regexp.MustCompile(`\$\(([A-Z0-9_]+)\)`)
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			s, ok := secret.StringData[e.ValueFrom.SecretKeyRef.Key]
			if !ok {
				t.Fatalf("%s: no secret key %s", e.Name, e.ValueFrom.SecretKeyRef.Key)
			}
			v = s
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			v = "nats-0"
		default:
			v = ref.ReplaceAllStringFunc(v, func(m string) string {
				name := ref.FindStringSubmatch(m)[1]
				if _, ok := vars[name]; !ok {
					t.Errorf("%s refers to %s, not defined before it", e.Name, name)
				}
				return vars[name]
			})
		}
		vars[e.Name] = v
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
	kopts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatalf("the ConfigMap's nats.conf with the StatefulSet's environment: %v", err)
	}
	// The same identities as cluster.conf, with the Secret's passwords.
	t.Setenv("NATS_SERVER_NAME", "nats")
	copts, err := server.ProcessConfigFile("nats/cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(kopts.Users) != len(natsRoles) || !reflect.DeepEqual(kopts.Users, copts.Users) {
		t.Errorf("users of the ConfigMap and of cluster.conf differ")
	}
	for _, u := range kopts.Users {
		if want := secret.StringData["nats-password-"+u.Username]; u.Password != want || want == "" {
			t.Errorf("user %s: password not the Secret's nats-password-%s", u.Username, u.Username)
		}
	}
	routePW := secret.StringData["nats-password-route"]
	if kopts.Cluster.Username != "route" || kopts.Cluster.Password != routePW || kopts.Cluster.Name != "botmesh" {
		t.Errorf("cluster authorization: user %q, cluster %q", kopts.Cluster.Username, kopts.Cluster.Name)
	}
	if len(kopts.Routes) != 3 {
		t.Fatalf("%d routes", len(kopts.Routes))
	}
	for i, u := range kopts.Routes {
		pw, _ := u.User.Password()
		if u.User.Username() != "route" || pw != routePW || u.Host != "nats-"+string(rune('0'+i))+".nats.botmesh.svc:6222" {
			t.Errorf("route %d: %s", i, u.Redacted())
		}
	}
}
