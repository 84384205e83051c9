package router

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/builtin"
	"github.com/botmesh/botmesh/router/directory"
	"github.com/botmesh/botmesh/sdk/suggest"
)

// Meta keys a gateway sets on a message said in a room (a channel, a
// multi-user chat), where the bot answers only when addressed; they are
// gateway/adapter's MetaRoom and MetaAddress.
const (
	// MetaRoom is "true" on a room's message.
	MetaRoom = "botmesh.room"
	// MetaAddress shows how to address the bot in that room, as examples
	// of help: `botmesh: help, @botmesh help or !help`.
	MetaAddress = "botmesh.address"
)

// helpEntry is one command as help shows it.
type helpEntry struct {
	name  string // as policies give it
	usage string // "get service [name]"
	desc  string // one line
	// more are the lines "help NAME" adds: examples.
	more []string
}

// line is the entry in the Micro Bot's form, "usage - description".
func (e helpEntry) line() string {
	if e.desc == "" {
		return e.usage
	}
	return e.usage + " - " + e.desc
}

// full is what "help NAME" shows.
func (e helpEntry) full() string {
	return strings.Join(append([]string{e.line()}, e.more...), "\n")
}

func builtinEntry(b builtin.Command) helpEntry {
	e := newEntry(b.Name, b.Usage, b.Description)
	for _, ex := range b.Examples {
		e.more = append(e.more, "Example: "+ex)
	}
	return e
}

// serviceEntry is a command service's command: the first line of its
// description is the description, further lines (its examples) are shown
// by "help NAME" only.
func serviceEntry(c directory.Command) helpEntry {
	desc, more, _ := strings.Cut(c.Description, "\n")
	e := newEntry(c.Pattern(), c.Usage, desc)
	for l := range strings.Lines(more) {
		if l = strings.TrimSpace(l); l != "" {
			e.more = append(e.more, seedWords(l, placeholders(c.Usage)))
		}
	}
	if c.Unreachable != "" {
		// No node of the service can be called: say why where the
		// command is listed.
		if e.desc == "" {
			e.desc = "cannot be run: " + c.Unreachable
		} else {
			e.desc += " (cannot be run: " + c.Unreachable + ")"
		}
	}
	return e
}

// newEntry is the command name with its usage and description in the
// Micro Bot's form (see seedWords).
func newEntry(name, usage, desc string) helpEntry {
	ph := placeholders(usage)
	return helpEntry{name: name, usage: seedWords(strings.TrimSpace(usage), ph), desc: seedWords(strings.TrimSpace(desc), ph)}
}

// placeholderWord is an argument written the micro CLI's way, NAME or
// [JSON]; the Micro Bot wrote [name] and [json].
var placeholderWord = regexp.MustCompile(`^\[?([A-Z][A-Z0-9_]*)\]?$`)

// placeholders returns the arguments of usage written in capitals (NAME,
// [JSON]), outside double quotes (a cron expression's "S M H DOM MON DOW"
// is literal), without their brackets.
func placeholders(usage string) map[string]bool {
	ph := map[string]bool{}
	quoted := false
	for i, w := range strings.Fields(usage) {
		if n := strings.Count(w, `"`); n > 0 {
			quoted = quoted != (n%2 == 1)
			continue
		}
		if m := placeholderWord.FindStringSubmatch(w); m != nil && i > 0 && !quoted {
			ph[m[1]] = true
		}
	}
	return ph
}

// capitalWord is a word of capitals, possibly in brackets.
var capitalWord = regexp.MustCompile(`\[?\b[A-Z][A-Z0-9_]*\b\]?`)

// seedWords writes the placeholders ph in text the Micro Bot's way:
// "[name]" for NAME and [NAME]. Other words of capitals (JSON in a
// description) stay.
func seedWords(text string, ph map[string]bool) string {
	if len(ph) == 0 {
		return text
	}
	return capitalWord.ReplaceAllStringFunc(text, func(w string) string {
		bare := strings.Trim(w, "[]")
		if !ph[bare] || strings.HasPrefix(w, "[") != strings.HasSuffix(w, "]") {
			return w
		}
		return "[" + strings.ToLower(bare) + "]"
	})
}

// helpShows returns whether help shows the command name to ev's author:
// every command with Config.HelpAll, else those the policy allows them
// here.
func (r *Router) helpShows(ev *chatopsv1.Event) func(name string) bool {
	return func(name string) bool {
		return r.cfg.HelpAll || r.decide(ev, name).Allowed
	}
}

// helpEntries are the commands help shows ev's author, built-ins and
// services' together, sorted by usage.
func (r *Router) helpEntries(ev *chatopsv1.Event) []helpEntry {
	may := r.helpShows(ev)
	var out []helpEntry
	add := func(e helpEntry) {
		if may(e.name) {
			out = append(out, e)
		}
	}
	add(builtinEntry(builtin.Help))
	for _, b := range r.builtins {
		add(builtinEntry(b))
	}
	for _, h := range r.firstHelp(ev) {
		usage, desc, _ := strings.Cut(h.line, " - ")
		add(newEntry(h.name, usage, desc))
	}
	for _, e := range elsewhereHelp() {
		if r.cfg.HelpAll || r.decide(ev, e.name+" *").Allowed {
			out = append(out, e)
		}
	}
	for _, c := range r.dir.Commands() {
		add(serviceEntry(c))
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.ToLower(out[i].usage) < strings.ToLower(out[j].usage)
	})
	return out
}

// helpText is help's answer: one alphabetical list of the commands ev's
// author may run, "usage - description" a line, and in a room how to
// address the bot there.
func (r *Router) helpText(ev *chatopsv1.Event) string {
	var lines []string
	for _, e := range r.helpEntries(ev) {
		lines = append(lines, e.line())
	}
	if inRoom(ev) {
		lines = append(lines, addressLine(ev))
	}
	return strings.Join(lines, "\n")
}

// helpFor answers "help COMMAND" (words are COMMAND's): the usage,
// description and examples of the command the words start, or that it is
// gone, or that there is none, with the closest names. A command help would not list for the
// user is not described to them either.
func (r *Router) helpFor(ctx context.Context, ev *chatopsv1.Event, words []string) *chatopsv1.Event {
	may := r.helpShows(ev)
	key := strings.ToLower(strings.Join(words, " "))
	for _, h := range r.firstHelp(ev) {
		if strings.EqualFold(h.name, words[0]) && may(h.name) {
			usage, desc, _ := strings.Cut(h.line, " - ")
			return r.reply(ev, newEntry(h.name, usage, desc).full())
		}
	}
	for _, e := range elsewhereHelp() {
		if strings.EqualFold(e.name, words[0]) && (r.cfg.HelpAll || r.decide(ev, e.name+" *").Allowed) {
			return r.reply(ev, e.full())
		}
	}
	if t, ok := r.resolve(ctx, key, words); ok && may(t.name) {
		switch {
		case t.help:
			return r.reply(ev, builtinEntry(builtin.Help).full())
		case t.builtin != nil:
			return r.reply(ev, builtinEntry(*t.builtin).full())
		default:
			return r.reply(ev, serviceEntry(t.cmd).full())
		}
	}
	if c, ok := r.goneCommand(ev, words); ok {
		return r.errorReply(ev, r.goneText(ev, c))
	}
	text := fmt.Sprintf("There is no command %q.", truncate(strings.Join(words, " "), 64))
	if s := suggest.Commands(words, r.commandNames(ev)); len(s) > 0 {
		text += " Did you mean " + suggest.Quote(s) + "?"
	}
	return r.errorReply(ev, text+" "+typeHelp(ev))
}

// commandNames are the names of the commands help shows ev's author, each
// of one or more words ("list services"), for suggestions.
func (r *Router) commandNames(ev *chatopsv1.Event) []string {
	var names []string
	for _, e := range r.helpEntries(ev) {
		names = append(names, e.name)
	}
	return names
}

// unknown explains that the words of ev's message start no command: a
// command whose service is gone says so (gone.go); else it suggests the
// closest commands. It quotes the words that failed: as many
// as the suggested commands have ("the three law" for "the three laws",
// "ecko" of "ecko hi" for "echo"), or, with nothing to suggest, the whole
// message (up to a length).
func (r *Router) unknown(ev *chatopsv1.Event, words []string) string {
	if c, ok := r.goneCommand(ev, words); ok {
		return r.goneText(ev, c)
	}
	s := suggest.Commands(words, r.commandNames(ev))
	n := len(words)
	if len(s) > 0 {
		n = 1
		for _, c := range s {
			n = max(n, len(strings.Fields(c)))
		}
		n = min(n, len(words))
	}
	text := fmt.Sprintf("unknown command %q.", clipWords(strings.Join(words[:n], " "), 64))
	if len(s) > 0 {
		text += " Did you mean " + suggest.Quote(s) + "?"
	}
	return text + " " + typeHelp(ev)
}

// inRoom reports whether ev was said in a room, where the bot answers only
// when addressed: the gateway says so (MetaRoom), or, from a gateway that
// does not, its platform's own meta does.
func inRoom(ev *chatopsv1.Event) bool {
	m := ev.GetMeta()
	if m[MetaRoom] == "true" {
		return true
	}
	switch ev.GetPlatform() {
	case "slack":
		t := m["slack.channel_type"]
		return (t == "channel" || t == "group" || t == "mpim") && m["slack.command"] == ""
	case "xmpp":
		return m["xmpp.type"] == "groupchat"
	case "irc":
		t := m["irc.target"]
		return t != "" && strings.ContainsRune("#&", rune(t[0]))
	}
	return false
}

// addressLine tells how to address the bot in ev's room.
func addressLine(ev *chatopsv1.Event) string {
	if a := ev.GetMeta()[MetaAddress]; a != "" {
		return "In channels, address me like this: " + a + "."
	}
	return "In channels, address me by my name first (name: help or @name help), or start with the command prefix (!help by default)."
}

// typeHelp tells how to get the list of commands where ev was said: in a
// room a plain "help" is not for the bot.
func typeHelp(ev *chatopsv1.Event) string {
	if !inRoom(ev) {
		return "Type help for the list of commands."
	}
	if a := ev.GetMeta()[MetaAddress]; a != "" {
		return "For the list of commands, type " + a + "."
	}
	return "For the list of commands, address help to me by name."
}

// clipWords cuts s to about n bytes, at a space when there is one in the
// second half, and marks the cut with "…".
func clipWords(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if i := strings.LastIndexByte(s[:n+1], ' '); i > n/2 {
		return s[:i] + "…"
	}
	return truncate(s, n)
}
