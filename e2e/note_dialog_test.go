package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/internal/allinone"
	"github.com/botmesh/botmesh/router"
)

// The demo of two-way dialog, through the whole all-in-one: note add
// without text asks, and the next message is the note; cancel leaves.
func TestAllInOneNoteAsks(t *testing.T) {
	in := adaptertest.New("test")
	runAllInOne(t, allinone.Config{Router: router.Config{Timeout: 10 * time.Second}, Gateway: gateway.Config{ReplyTimeout: 20 * time.Second}}, nil, in)
	for _, st := range []struct{ say, want string }{
		{"note add", "What should I note? (reply, or cancel)"},
		{"the release is on Friday", "noted (note 1)"},
		{"notes", "1. the release is on Friday (ada)"},
		{"note add", "What should I note? (reply, or cancel)"},
		{"cancel", "cancelled: note asks no more"},
		{"notes", "1. the release is on Friday (ada)"},
	} {
		if got := string(ask(t, in, st.say).GetData()); got != st.want {
			t.Errorf("%q: got %q, want %q", st.say, got, st.want)
		}
	}
	if help := string(ask(t, in, "help").GetData()); !strings.Contains(help, "note add [text] | note forget [n] - Keeps a note for this conversation, or forgets note [n]") {
		t.Errorf("help:\n%s", help)
	}
}
