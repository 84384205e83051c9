// Command echo serves the botmesh command "echo" (go-micro service
// go.micro.bot.echo). Run with --help for its flags.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/services/echo"
)

func main() {
	if err := command.Main(context.Background(), os.Args[1:], "echo", echo.Handler{}); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}
