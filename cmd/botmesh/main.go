// Command botmesh runs the whole botmesh mesh in one process: an embedded
// NATS server, a router, the command services and the shell input. Lines on
// stdin are messages; replies go to stdout.
//
//	printf 'ping\necho hi there\nhelp\n' | botmesh
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/botmesh/botmesh/internal/allinone"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := allinone.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "botmesh:", err)
		os.Exit(1)
	}
}
