package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	slackgw "github.com/botmesh/botmesh/gateway/adapter/slack"
)

// The Micro Bot's command line (--slack_token) parses and initialises as
// the gateway binary does it; what Socket Mode still needs is named.
func TestMicroBotSlackFlags(t *testing.T) {
	const bot = "xoxb-1-MICROBOTTOKEN"
	for _, tc := range []struct {
		name string
		args []string
		want string // the whole error
	}{
		{"slack_token alone: Socket Mode lacks the app token",
			[]string{"--inputs", "slack", "--slack_token", bot},
			slackgw.NeedAppToken},
		{"slack_bot_token alone: the same",
			[]string{"--inputs", "slack", "--slack_bot_token", bot},
			slackgw.NeedAppToken},
		{"both names of the bot token",
			[]string{"--inputs", "slack", "--slack_token", bot, "--slack_bot_token", bot, "--slack_app_token", "xapp-1-A"},
			"slack: --slack_token and --slack_bot_token are the same token: set one of them"},
		{"slack_token is checked as the bot token",
			[]string{"--inputs", "slack", "--slack_token", "xapp-1-WRONG", "--slack_app_token", "xapp-1-A"},
			"slack: --slack_bot_token is not a bot token (they start with xoxb-)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("run: %v\nwant: %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "MICROBOTTOKEN") || strings.Contains(err.Error(), "WRONG") {
				t.Errorf("the error quotes a token: %v", err)
			}
		})
	}
}

func TestNeedAppTokenNamesEverything(t *testing.T) {
	for _, s := range []string{"--slack_app_token", "BOTMESH_SLACK_APP_TOKEN", "xapp-", "connections:write", "Basic Information → App-Level Tokens", "--slack_mode http", "--slack_signing_secret"} {
		if !strings.Contains(slackgw.NeedAppToken, s) {
			t.Errorf("the Socket Mode error does not say %q: %s", s, slackgw.NeedAppToken)
		}
	}
}

// The gateway speaks NATS only: it must not link go-micro's registries,
// transports and clients (etcd, gRPC, the plugins), which doubled its binary
// and took its resident memory at rest from about 17 MiB to 29 MiB
// (BENCHMARKS.md). What it links comes in through imports, so this fails as
// soon as one of them pulls those in again.
func TestLinksNATSOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, heavy := range []string{"go.etcd.io/", "google.golang.org/grpc", "github.com/go-micro/plugins/", "go-micro.dev/v4/util/cmd", "github.com/botmesh/botmesh/sdk/mesh"} {
			if strings.HasPrefix(dep, heavy) {
				t.Errorf("the gateway links %s", dep)
			}
		}
	}
}
