package router

import (
	"fmt"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/directory"
)

// A command whose service was removed is "gone", with when it was last
// seen, rather than unknown: the directory remembers what it removes
// (directory.Gone), when it removes it.

// goneCommand returns the command that words start (the longest) among
// those whose service is gone, if the user may see it: words that matched
// no command now name one whose service is gone.
func (r *Router) goneCommand(ev *chatopsv1.Event, words []string) (directory.GoneCommand, bool) {
	g, ok := r.dir.Gone(words)
	if !ok || !r.helpShows(ev)(g.Pattern()) {
		return directory.GoneCommand{}, false
	}
	return g, true
}

// goneText says that a command's service is gone, and when it was last
// seen.
func (r *Router) goneText(ev *chatopsv1.Event, c directory.GoneCommand) string {
	return fmt.Sprintf("%q is gone: %s was last seen %s ago. %s", c.Pattern(), c.Service, ago(r.now().Sub(c.Last)), typeHelp(ev))
}

// ago writes a duration as people say how long ago: 5s, 3m, 2h, 4d.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(max(d, 0).Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
