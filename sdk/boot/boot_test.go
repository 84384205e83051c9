package boot_test

import (
	"flag"
	"io"
	"testing"

	"github.com/botmesh/botmesh/sdk/boot"
	"github.com/botmesh/botmesh/sdk/natsconn"
)

// Looking for NATS (locally, then on the LAN) is opt-in (--find_nats or
// BOTMESH_FIND_NATS), and happens only when no NATS address is given: no
// --nats_url flag, no BOTMESH_NATS_URL, and the binary's default left
// alone.
func TestFindNATSOnlyWithoutAnAddress(t *testing.T) {
	custom := natsconn.DefaultConfig()
	custom.NATSURL = "nats://nats.internal:4222"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		spec *natsconn.Config
		want bool
	}{
		{name: "nothing given"},
		{name: "asked for", args: []string{"--find_nats"}, want: true},
		{name: "asked for in the environment", env: map[string]string{"BOTMESH_FIND_NATS": "true"}, want: true},
		{name: "flag", args: []string{"--find_nats", "--nats_url", "nats://10.0.0.1:4222"}},
		{name: "flag with the default value", args: []string{"--find_nats", "--nats_url=nats://127.0.0.1:4222"}},
		{name: "environment", args: []string{"--find_nats"}, env: map[string]string{"BOTMESH_NATS_URL": "nats://10.0.0.1:4222"}},
		{name: "environment with the default value", args: []string{"--find_nats"}, env: map[string]string{"BOTMESH_NATS_URL": "nats://127.0.0.1:4222"}},
		{name: "binary default", args: []string{"--find_nats"}, spec: &custom},
		{name: "LAN search off", args: []string{"--find_nats", "--nats_lan_wait=0"}},
		{name: "other flags only", args: []string{"--log_level", "debug", "--nats_announce"}},
		{name: "other flags and asked for", args: []string{"--log_level", "debug", "--nats_announce", "--find_nats"}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg, _, err := boot.Parse(fs, boot.Spec{Name: "test", Args: tc.args, LogTo: io.Discard, NATS: tc.spec})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.FindNATS != tc.want {
				t.Errorf("FindNATS = %v, want %v (nats_url %s)", cfg.FindNATS, tc.want, cfg.NATSURL)
			}
		})
	}
}
