package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/directory"
)

// A router remembers the commands of the services it has seen, so that a
// command whose service was removed is "gone", with when it was last seen,
// rather than unknown. The memory is this router's: a router started after
// a service left does not know it was there.
const (
	// seenEvery is how often the directory's commands are noted as seen:
	// the precision of "last seen", and the shortest stay of a service
	// that every router is sure to remember (a command service added and
	// removed within 2 s, in the compose test, was missed by a router
	// noting every second).
	seenEvery = 200 * time.Millisecond
	// seenMax bounds the commands remembered; the longest gone go first.
	seenMax = 1000
)

// seenCommands are the commands this router has seen, by pattern.
type seenCommands struct {
	mu   sync.Mutex
	cmds map[string]seenCommand
}

type seenCommand struct {
	cmd  directory.Command
	last time.Time
}

// trackSeen notes the directory's commands as seen every seenEvery until
// ctx is done.
func (r *Router) trackSeen(ctx context.Context) {
	t := time.NewTicker(seenEvery)
	defer t.Stop()
	for {
		r.noteSeen(r.dir.Commands())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// noteSeen notes cmds, which the directory has now, as seen now. Besides
// trackSeen, help notes what it lists: a service that came and went
// between two ticks is remembered if help showed it.
func (r *Router) noteSeen(cmds []directory.Command) {
	now := r.now()
	s := &r.seen
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmds == nil {
		s.cmds = map[string]seenCommand{}
	}
	for _, c := range cmds {
		s.cmds[c.Pattern()] = seenCommand{cmd: c, last: now}
	}
	for len(s.cmds) > seenMax {
		oldest := ""
		for p, c := range s.cmds {
			if oldest == "" || c.last.Before(s.cmds[oldest].last) {
				oldest = p
			}
		}
		delete(s.cmds, oldest)
	}
}

// goneCommand returns the command that words start (the longest) among
// those this router has seen, if the user may see it: words that matched
// no command now name one whose service is gone.
func (r *Router) goneCommand(ev *chatopsv1.Event, words []string) (seenCommand, bool) {
	s := &r.seen
	s.mu.Lock()
	var best seenCommand
	found := false
	for _, c := range s.cmds {
		if startsWith(words, c.cmd.Words) && (!found || len(c.cmd.Words) > len(best.cmd.Words)) {
			best, found = c, true
		}
	}
	s.mu.Unlock()
	if !found || !r.helpShows(ev)(best.cmd.Pattern()) {
		return seenCommand{}, false
	}
	return best, true
}

// startsWith reports whether words begin with the lower-case pattern,
// ignoring case.
func startsWith(words, pattern []string) bool {
	if len(pattern) == 0 || len(pattern) > len(words) {
		return false
	}
	for i, p := range pattern {
		if !strings.EqualFold(words[i], p) {
			return false
		}
	}
	return true
}

// goneText says that a command's service is gone, and when it was last
// seen.
func (r *Router) goneText(ev *chatopsv1.Event, c seenCommand) string {
	return fmt.Sprintf("%q is gone: %s was last seen %s ago. %s", c.cmd.Pattern(), c.cmd.Service, ago(r.now().Sub(c.last)), typeHelp(ev))
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
