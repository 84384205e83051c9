// Command query serves the botmesh commands query SERVICE METHOD [JSON] and
// health SERVICE (go-micro service <namespace>.query): it calls any go-micro
// service of the mesh's registry with JSON, and asks every node of a service
// for its health. Run with --help for its flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/services/query"
)

func main() {
	timeout, healthTimeout, maxBytes := query.DefaultTimeout, query.DefaultHealthTimeout, query.DefaultMaxBytes
	flags := func(fs *flag.FlagSet) {
		fs.DurationVar(&timeout, "query_timeout", timeout, "longest a query call may take (keep it under the router's --timeout)")
		fs.DurationVar(&healthTimeout, "health_timeout", healthTimeout, "longest the health check of one node may take")
		fs.IntVar(&maxBytes, "max_answer_bytes", maxBytes, "longest answer, in bytes; longer ones are cut with a note")
	}
	build := func(m *mesh.Mesh) (chatopsv1.CommandHandler, error) {
		return query.New(m.Registry(), m.NewClient(),
			query.WithLogger(m.Logger().With("service", query.Name)),
			query.WithTimeout(timeout),
			query.WithHealthTimeout(healthTimeout),
			query.WithMaxBytes(maxBytes),
			query.WithNamespace(m.Namespace())), nil
	}
	if err := command.MainFunc(context.Background(), os.Args[1:], query.Name, flags, build); err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}
