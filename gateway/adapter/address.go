package adapter

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The addressing rule, the same on every platform:
//
//   - In a direct conversation every message is for the bot; a leading
//     address (below) is dropped.
//   - In a room (a channel, a multi-user chat) a message is for the bot
//     only when it starts with one of
//     "@bot cmd" (or the platform's own mention of the bot),
//     "bot: cmd", "bot, cmd",
//     or the prefix: "!cmd" (--prefix, "!" by default; empty turns it off).
//     Anything else is chatter and gets no answer: "bot is acting up
//     again" or "bot ping" (a name without ":" or ",") is a sentence about
//     the bot, not a command.

// DefaultPrefix is the default of --prefix.
const DefaultPrefix = "!"

// DefaultName is the bot's name where the platform gives it none (the
// terminal, the web chat): there too "@botmesh ping" and "botmesh: ping"
// are ping, as a user used to the channels would type them.
const DefaultName = "botmesh"

// Meta keys a gateway input sets on the events of rooms, for the router.
const (
	// MetaRoom is "true" on a message said in a room (channel, multi-user
	// chat), where the bot answers only when addressed; a direct message
	// does not have it.
	MetaRoom = "botmesh.room"
	// MetaAddress shows how to address the bot in that room, as examples:
	// `botmesh: help, @botmesh help or !help`.
	MetaAddress = "botmesh.address"
)

// Addressing is how users address the bot in one conversation.
type Addressing struct {
	// Names are the bot's names there (an IRC nick, an XMPP room
	// nickname): "name: cmd", "name, cmd" and "@name cmd" address it.
	// Empty names are skipped; the first is the one Describe shows.
	Names []string
	// Mentions are the platform's own markup of a mention of the bot as
	// it arrives in the text (Slack's "<@U123>"); "<@U123> cmd" addresses
	// it.
	Mentions []string
	// Prefix addresses the bot when a message starts with it followed by
	// a letter or digit ("!ping"); empty: no prefix.
	Prefix string
	// Fold compares a name; nil compares Unicode case-insensitively (IRC
	// passes its own case mapping).
	Fold func(a, b string) bool
}

// Room returns the command in a room message and whether the message
// addresses the bot at all. An addressed message with nothing after the
// address ("botmesh:") returns "", true.
func (a Addressing) Room(text string) (string, bool) {
	t := strings.TrimLeftFunc(text, unicode.IsSpace)
	if p := a.Prefix; p != "" && strings.HasPrefix(t, p) {
		// "!ping" is a command; "!!!", "! wow" and "!?" are not.
		r, _ := utf8.DecodeRuneInString(t[len(p):])
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return strings.TrimSpace(t[len(p):]), true
		}
	}
	for _, m := range a.Mentions {
		if m != "" && strings.HasPrefix(t, m) {
			if rest, ok := afterName(t[len(m):], true); ok {
				return rest, true
			}
		}
	}
	fold := a.Fold
	if fold == nil {
		fold = strings.EqualFold
	}
	for _, n := range a.Names {
		if n == "" {
			continue
		}
		t, mention := strings.CutPrefix(t, "@")
		if len(t) < len(n) || !fold(t[:len(n)], n) {
			continue
		}
		if rest, ok := afterName(t[len(n):], mention); ok {
			return rest, true
		}
	}
	return "", false
}

// Direct returns the command in a direct message: the whole text, less a
// leading address if there is one.
func (a Addressing) Direct(text string) string {
	if cmd, ok := a.Room(text); ok {
		return cmd
	}
	return strings.TrimSpace(text)
}

// Command returns the command in text and whether the bot should take it:
// in a room only an addressed message is taken.
func (a Addressing) Command(text string, room bool) (string, bool) {
	if room {
		return a.Room(text)
	}
	return a.Direct(text), true
}

// Describe returns how to address the bot in a room, as examples of cmd:
// `botmesh: help, @botmesh help or !help`.
func (a Addressing) Describe(cmd string) string {
	var forms []string
	for _, n := range a.Names {
		if n != "" {
			forms = append(forms, n+": "+cmd, "@"+n+" "+cmd)
			break
		}
	}
	if a.Prefix != "" {
		forms = append(forms, a.Prefix+cmd)
	}
	switch len(forms) {
	case 0:
		return ""
	case 1:
		return forms[0]
	}
	return strings.Join(forms[:len(forms)-1], ", ") + " or " + forms[len(forms)-1]
}

// MarkRoom sets the meta keys of a room message: MetaRoom, and MetaAddress
// from a.
func (a Addressing) MarkRoom(meta map[string]string) {
	meta[MetaRoom] = "true"
	if d := a.Describe("help"); d != "" {
		meta[MetaAddress] = d
	}
}

// afterName returns the command after the bot's name: the name must end
// the text or be followed by ":" or "," (or, after a mention, by a space),
// so that a name that starts a sentence ("botmesh is slow today") or
// another word ("botmeshes") is not an address.
func afterName(rest string, mention bool) (string, bool) {
	if rest == "" {
		return "", true
	}
	r, size := utf8.DecodeRuneInString(rest)
	switch {
	case r == ':' || r == ',':
		return strings.TrimSpace(rest[size:]), true
	case mention && unicode.IsSpace(r):
		return strings.TrimSpace(rest), true
	}
	return "", false
}

// NameAsker puts the asker's name before a reply in a room
// ("alice: pong"), as people answer each other there.
func NameAsker(name, text string) string {
	if name == "" {
		return text
	}
	return name + ": " + text
}
