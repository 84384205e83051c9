// Command healthcheck is the health check of botmesh's FROM-scratch
// container images, which have no shell and no curl: it asks an admin
// address (or a nats-server monitoring port) for /healthz and exits 0 when
// the answer is ready, 1 otherwise, printing why.
//
//	healthcheck 127.0.0.1:8081
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/botmesh/botmesh/sdk/admin"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: healthcheck HOST:PORT   (asks http://HOST:PORT/healthz)")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := admin.Probe(ctx, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}
