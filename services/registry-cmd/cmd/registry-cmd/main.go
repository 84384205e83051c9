// Command registry-cmd serves the botmesh commands list services, get
// service, register service and deregister service (go-micro service
// <namespace>.registry) on the mesh's registry. Run with --help for its
// flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/mesh"
	registrycmd "github.com/botmesh/botmesh/services/registry-cmd"
)

func main() {
	maxBytes := registrycmd.DefaultMaxBytes
	flags := func(fs *flag.FlagSet) {
		fs.IntVar(&maxBytes, "max_answer_bytes", maxBytes, "longest answer, in bytes; longer ones are cut with a note")
	}
	build := func(m *mesh.Mesh) (chatopsv1.CommandHandler, error) {
		return registrycmd.New(m.Registry(),
			registrycmd.WithNamespace(m.Namespace()),
			registrycmd.WithLogger(m.Logger().With("service", registrycmd.Name)),
			registrycmd.WithMaxBytes(maxBytes)), nil
	}
	if err := command.MainFunc(context.Background(), os.Args[1:], registrycmd.Name, flags, build); err != nil {
		fmt.Fprintln(os.Stderr, "registry-cmd:", err)
		os.Exit(1)
	}
}
