// Package builtin holds the commands the router answers itself, with the
// words and behaviour of the Micro Bot's: hello, ping, time, the three laws
// (help is assembled by the router, which knows the command services).
package builtin

import (
	"context"
	"regexp"
	"strings"
	"time"
)

// Command is a built-in command.
type Command struct {
	// Name identifies the command ("ping").
	Name string
	// Pattern is matched against the message key (lower-case words joined by
	// single spaces), as the Micro Bot matched its built-ins.
	Pattern *regexp.Regexp
	// Usage and Description are shown by help, in the Micro Bot's form
	// "usage - description" with [arg] placeholders.
	Usage, Description string
	// Examples are shown by "help NAME".
	Examples []string
	// Exec answers the command. args are the message's words.
	Exec func(ctx context.Context, args []string) string
}

// HelpUsage is the help command's name, which policies give.
const HelpUsage = "help"

// Help is how help describes itself; the router answers it (it knows the
// command services), so it has no Exec.
var Help = Command{
	Name: HelpUsage, Pattern: regexp.MustCompile(`^help( |$)`),
	Usage:       "help [command]",
	Description: "Displays help for all known commands, or the usage, description and examples of [command]",
	Examples:    []string{"help", "help echo", "help list services"},
}

// HelpPattern matches the help command, alone or with the command to
// describe ("help list services").
var HelpPattern = Help.Pattern

// Laws are the three laws of robotics, as the Micro Bot states them.
var Laws = []string{
	"1. A robot may not injure a human being or, through inaction, allow a human being to come to harm.",
	"2. A robot must obey the orders given it by human beings except where such orders would conflict with the First Law.",
	"3. A robot must protect its own existence as long as such protection does not conflict with the First or Second Laws.",
}

// Commands returns the built-ins in matching order. now gives the time for
// the time command (time.Now outside tests).
func Commands(now func() time.Time) []Command {
	return []Command{
		{
			Name: "hello", Pattern: regexp.MustCompile(`^hello$`),
			Usage: "hello", Description: "Returns a greeting", Examples: []string{"hello"},
			Exec: func(context.Context, []string) string { return "hey what's up?" },
		},
		{
			Name: "ping", Pattern: regexp.MustCompile(`^ping$`),
			Usage: "ping", Description: "Returns pong", Examples: []string{"ping"},
			Exec: func(context.Context, []string) string { return "pong" },
		},
		{
			Name: "the three laws", Pattern: regexp.MustCompile(`^(the )?three laws( of robotics)?$`),
			Usage: "the three laws", Description: "Returns the three laws of robotics", Examples: []string{"the three laws", "three laws of robotics"},
			Exec: func(context.Context, []string) string { return strings.Join(Laws, "\n") },
		},
		{
			Name: "time", Pattern: regexp.MustCompile(`^time$`),
			Usage: "time", Description: "Returns the server time", Examples: []string{"time"},
			Exec: func(context.Context, []string) string { return "Server time is: " + now().Format(time.RFC1123) },
		},
	}
}

// Match returns the first built-in whose pattern matches key.
func Match(cmds []Command, key string) (*Command, bool) {
	for i := range cmds {
		if cmds[i].Pattern.MatchString(key) {
			return &cmds[i], true
		}
	}
	return nil, false
}
