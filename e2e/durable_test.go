package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
)

// A router killed with SIGKILL while it holds messages loses none of them:
// with JetStream delivery they go to the other router after the ack wait,
// and each of 1,000 messages is answered exactly once.
func TestIntegrationKillRouterInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	url := startNATS(t)
	routerArgs := []string{"--nats_url", url, "--ack_wait", "2s", "--log_level", "info", "--progress_after", "0", "--rate_user", "0", "--rate_channel", "0"}
	r1 := start(t, "router-1", "router", nil, routerArgs...)
	r2 := start(t, "router-2", "router", nil, routerArgs...)

	// A command that takes a while, so that many messages are in flight
	// at once; served from this test process, joining through NATS.
	m := meshtest.Mesh(t, nil, func(c *mesh.Config) { c.NATSURL = url })
	svc, err := command.New(m, "work", handler{usage: "work N", exec: func(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
		time.Sleep(400 * time.Millisecond)
		rsp.Result = []byte("done " + strings.Join(req.Args[1:], " "))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })

	sh := startShell(t, url, "--reply_timeout", "60s")
	deadline := time.Now().Add(30 * time.Second)
	for {
		sh.say(t, "work probe")
		if l := sh.line(t, 65*time.Second); l == "done probe" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("work never answered: %q", l)
		}
		time.Sleep(100 * time.Millisecond)
	}

	const n = 1000
	for i := range n {
		sh.say(t, fmt.Sprintf("work %d", i))
		if i == n/2 {
			// Half sent, the rest arriving: kill a router that holds
			// messages it has not answered (the gateway hands the first
			// half to the routers within milliseconds; each takes 400ms).
			time.Sleep(150 * time.Millisecond)
			if err := r1.stop(t, syscall.SIGKILL, 10*time.Second); err == nil {
				t.Fatal("router-1 exited cleanly after SIGKILL?")
			}
		}
	}
	for i := range n {
		if l := sh.line(t, 65*time.Second); l != fmt.Sprintf("done %d", i) {
			t.Fatalf("reply %d: %q", i, l)
		}
	}
	sh.in.Close()
	select {
	case <-sh.p.done:
	case <-time.After(70 * time.Second):
		t.Fatal("gateway did not exit after its input ended")
	}
	if l, ok := <-sh.lines; ok {
		t.Errorf("more than %d replies; extra: %q", n, l)
	}
	redelivered := strings.Count(r2.stderr.String(), `msg="redelivered message"`)
	t.Logf("router-2 answered %d messages redelivered from the killed router-1", redelivered)
	if redelivered == 0 {
		t.Errorf("router-2 got no redelivered message: router-1 held none when killed, so the test proved nothing")
	}
}
