package allinone

import (
	"flag"
	"io"
	"testing"

	"github.com/botmesh/botmesh/gateway"
)

// The mail output joins the inputs when an SMTP server is set, once.
func TestWithMail(t *testing.T) {
	for _, tc := range []struct {
		smtp, inputs, want string
	}{
		{"", "shell,web", "shell,web"},
		{"smtp://u:pw@127.0.0.1:25", "shell,web", "shell,web,mail"},
		{"smtp://127.0.0.1:25", "shell, mail", "shell, mail"},
	} {
		fs := flag.NewFlagSet("botmesh", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		gateway.Inputs().Instantiate().Flags(fs)
		if tc.smtp != "" {
			if err := fs.Set("smtp_url", tc.smtp); err != nil {
				t.Fatal(err)
			}
		}
		if got := withMail(fs, tc.inputs); got != tc.want {
			t.Errorf("smtp %q, inputs %q: %q, want %q", tc.smtp, tc.inputs, got, tc.want)
		}
	}
}
