package stream

import (
	"strings"
	"testing"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/parse"
)

// FuzzFilterCommand reads untrusted message text as a command filter
// does: a filter on the first words the routers read in a message (one to
// three of them) selects it, and a filter on other words does
// not.
func FuzzFilterCommand(f *testing.F) {
	for _, s := range []string{"deploy api v2", "micro list services", "micro", "  Deploy\u200bdb ", "\xff\xfe deploy", "echo\tdeploy\nnow", "", "de\u2060ploy api", "\u202edeploy"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := &chatopsv1.Event{Data: data}
		msg, err := parse.Parse(data, 0)
		if err != nil {
			if (Filter{Command: "x"}).match(ev) {
				t.Fatalf("a filter selects %q, which the routers do not read as a command", data)
			}
			return
		}
		words := msg.Words
		for n := 1; n <= min(len(words), 3); n++ {
			cmd := strings.Join(words[:n], " ")
			if !(Filter{Command: cmd}).match(ev) {
				t.Fatalf("a filter on %q does not select %q", cmd, data)
			}
		}
		if (Filter{Command: strings.Join(words, " ") + " more"}).match(ev) {
			t.Fatalf("a filter on more words than %q has selects it", data)
		}
	})
}
