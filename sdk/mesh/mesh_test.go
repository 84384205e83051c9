package mesh

import (
	"context"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/boot"
)

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c := DefaultConfig()
	c.Registry, c.Transport, c.Namespace, c.NATSURL = "zookeeper", "grpc", "go.micro.", " "
	err := c.Validate()
	for _, want := range []string{`registry "zookeeper"`, `transport "grpc"`, `namespace "go.micro."`, "nats_url is empty"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	c = DefaultConfig()
	c.Registry = RegistryMDNS
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "the mdns registry needs the http transport") {
		t.Errorf("mdns with the NATS transport: %v", err)
	}
	c.Transport = TransportHTTP
	if err := c.Validate(); err != nil {
		t.Errorf("mdns with the http transport: %v", err)
	}
}

// Connect to a NATS server that is not there waits, then reports which
// server did not answer, without the password.
func TestConnectDeadNATS(t *testing.T) {
	c := DefaultConfig()
	c.NATSURL = "nats://bob:s3cret@127.0.0.1:1"
	c.ConnectWait = 300 * time.Millisecond
	start := time.Now()
	_, err := Connect(context.Background(), c)
	if err == nil {
		t.Fatal("connected to nothing")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1 did not answer") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %s, want about 300ms", d)
	}
}

// --registry_address for etcd: host:port or http://host:port endpoints;
// anything else is refused with the reason (go-micro's plugin would skip
// it silently and use 127.0.0.1:2379).
func TestEtcdEndpoints(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "127.0.0.1:2379",
		"10.0.0.1:2379, http://10.0.0.2:2379": "10.0.0.1:2379,10.0.0.2:2379",
		"http://[::1]:2379":                   "[::1]:2379",
	} {
		got, err := etcdEndpoints(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("%q: %v %v, want %s", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"etcd.example.com":       `registry_address "etcd.example.com" is not an etcd endpoint: want host:port, e.g. 127.0.0.1:2379`,
		"https://etcd:2379":      `registry_address "https://etcd:2379": botmesh does not speak TLS to etcd yet`,
		"http://etcd:2379/v3/kv": `registry_address "etcd:2379/v3/kv" is not an etcd endpoint`,
	} {
		c := DefaultConfig()
		c.Registry, c.RegistryAddress = RegistryEtcd, in
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", in, err, want)
		}
	}
}

// mesh.Parse reads go-micro's flags beside boot's NATS flags, from the
// command line and the environment.
func TestParse(t *testing.T) {
	t.Setenv("BOTMESH_NAMESPACE", "com.example.bot")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, _, err := Parse(fs, boot.Spec{Name: "test", Args: []string{"--registry", "etcd", "--find_nats", "--nats_user", "bob"}, LogTo: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registry != RegistryEtcd || cfg.Namespace != "com.example.bot" || !cfg.FindNATS || cfg.Auth.User != "bob" || cfg.Name != "test" {
		t.Errorf("parsed %+v", cfg)
	}
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, _, err := Parse(fs, boot.Spec{Name: "test", Args: []string{"--registry", "etcd", "stray"}, LogTo: io.Discard}); err == nil || !strings.Contains(err.Error(), `unexpected arguments "stray"`) {
		t.Errorf("stray argument: %v", err)
	}
}
