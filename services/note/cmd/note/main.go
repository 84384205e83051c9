// Command note serves the botmesh commands note and notes (go-micro
// service <namespace>.note): a conversation's notes, kept in the routers'
// memory buckets on NATS. Run with --help for its flags.
package main

import (
	"context"
	"fmt"
	"os"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/services/note"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	build := func(m *mesh.Mesh) (chatopsv1.CommandHandler, error) {
		js, err := jetstream.New(m.NATS())
		if err != nil {
			return nil, err
		}
		return note.New(js)
	}
	if err := command.MainFunc(context.Background(), os.Args[1:], note.Name, nil, build); err != nil {
		fmt.Fprintln(os.Stderr, "note:", err)
		os.Exit(1)
	}
}
