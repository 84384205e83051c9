package flagenv

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	env := map[string]string{"BOTMESH_NATS_URL": "nats://env:4222", "BOTMESH_TIMEOUT": "3s", "BOTMESH_MAX_INFLIGHT": "7"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	url := fs.String("nats_url", "nats://default", "NATS")
	timeout := fs.Duration("timeout", 0, "timeout")
	inflight := fs.Int("max_inflight", 1, "n")
	if err := Parse(fs, []string{"--timeout", "5s"}, lookup); err != nil {
		t.Fatal(err)
	}
	if *url != "nats://env:4222" || timeout.String() != "5s" || *inflight != 7 {
		t.Errorf("got url %q timeout %s inflight %d; want env url, flag timeout (flag wins), env inflight", *url, timeout, *inflight)
	}
	if u := fs.Lookup("nats_url").Usage; !strings.HasSuffix(u, "(env BOTMESH_NATS_URL)") {
		t.Errorf("usage does not name the variable: %q", u)
	}
}

func TestParseBadEnv(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Duration("timeout", 0, "timeout")
	err := Parse(fs, nil, func(string) (string, bool) { return "soon", true })
	if err == nil || !strings.Contains(err.Error(), `BOTMESH_TIMEOUT="soon"`) {
		t.Errorf("error %v does not name the variable and value", err)
	}
}
