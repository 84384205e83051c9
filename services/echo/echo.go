// Package echo is the smallest botmesh command service, and the one to copy:
// a type with Help and Exec, served under the name "echo".
package echo

import (
	"context"
	"strings"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// Handler answers "echo [text]" with the text.
type Handler struct{}

// Help tells the router how to list the command.
func (Handler) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	rsp.Usage = "echo [text]"
	rsp.Description = "Returns the [text]"
	return nil
}

// Exec runs the command; req.Args[0] is "echo".
func (Handler) Exec(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	if len(req.Args) < 2 {
		rsp.Result = []byte("echo what?")
		return nil
	}
	rsp.Result = []byte(strings.Join(req.Args[1:], " "))
	return nil
}
