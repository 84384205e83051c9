// Command uptime is an example of a command service written outside
// botmesh's own services: it answers "uptime" with how long it has run.
// Build it, run it next to a mesh, and "uptime" appears in help.
//
//	go run ./examples/uptime --nats_url nats://127.0.0.1:4222
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
)

type uptime struct{ started time.Time }

func (u uptime) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	rsp.Usage = "uptime"
	rsp.Description = "Says how long the uptime service has been running"
	return nil
}

func (u uptime) Exec(_ context.Context, _ *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	rsp.Result = []byte("up " + time.Since(u.started).Round(time.Second).String())
	return nil
}

func main() {
	if err := command.Main(context.Background(), os.Args[1:], "uptime", uptime{started: time.Now()}); err != nil {
		fmt.Fprintln(os.Stderr, "uptime:", err)
		os.Exit(1)
	}
}
