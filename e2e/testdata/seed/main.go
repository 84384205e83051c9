// Command seed is the command service of the Micro Bot blog post (2016), as
// a go-micro team would write it today: the blog's code on go-micro v4,
// its own copy of the Micro Bot's proto, no botmesh import. It runs with
// go-micro's defaults (mdns registry, http transport); the only choice a
// team may add is the registry, by go-micro's own flags
// (--registry nats|etcd --registry_address …), for which it imports
// go-micro's NATS and etcd registry plugins. The e2e tests run it against botmesh
// (e2e/seed_test.go).
//
// Beside the blog's echo of its arguments, "command fail" sets rsp.Error
// and "command crash" returns an error from the handler, the two ways the
// blog says a command can fail.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	_ "github.com/go-micro/plugins/v4/registry/etcd"
	_ "github.com/go-micro/plugins/v4/registry/nats"
	"go-micro.dev/v4"

	proto "github.com/botmesh/botmesh/e2e/testdata/seed/proto"
)

type Command struct{}

// Help returns the command usage
func (c *Command) Help(ctx context.Context, req *proto.HelpRequest, rsp *proto.HelpResponse) error {
	// Usage should include the name of the command
	rsp.Usage = "command"
	rsp.Description = "This is an example bot command as a micro service"
	return nil
}

// Exec executes the command
func (c *Command) Exec(ctx context.Context, req *proto.ExecRequest, rsp *proto.ExecResponse) error {
	if len(req.Args) > 1 && req.Args[1] == "fail" {
		rsp.Error = "there is nothing to fail here"
		return nil
	}
	if len(req.Args) > 1 && req.Args[1] == "crash" {
		return errors.New("the command crashed")
	}
	rsp.Result = []byte(strings.Join(req.Args, " "))
	// rsp.Error could be set to return an error instead
	// the function error would only be used for service level issues
	return nil
}

func main() {
	service := micro.NewService(
		micro.Name("go.micro.bot.command"),
	)

	service.Init()

	proto.RegisterCommandHandler(service.Server(), new(Command))

	if err := service.Run(); err != nil {
		fmt.Println(err)
	}
}
