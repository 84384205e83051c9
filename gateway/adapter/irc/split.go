package ircgw

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// lineLimit is the IRC line limit: 512 bytes with CR LF (RFC 1459 §2.3).
const lineLimit = 512

// budget returns how many bytes of text fit in one PRIVMSG to target as
// the server relays it to others, ":nick!userhost PRIVMSG target :text\r\n"
// within 512 bytes. userhost is "user@host" as the server shows the bot;
// when unknown, assume the longest usual one (96 bytes, as irc-go does).
// margin covers a nick change between sending and relaying.
func budget(nick, userhost, target string) int {
	const margin = 8
	uh := len(userhost)
	if uh == 0 {
		uh = 96
	}
	n := lineLimit - len(":"+nick+"!") - uh - len(" PRIVMSG ") - len(target) - len(" :") - len("\r\n") - margin
	return max(n, 16)
}

// splitReply turns a reply into IRC lines: one per line of text (CR LF, LF
// and CR all end lines), each wrapped into pieces of at most max bytes. A
// piece ends before the last space in its last quarter, and that space
// becomes the line break; where there is none it ends between characters,
// never inside a UTF-8 sequence. Servers strip trailing white space and
// relay no empty text, so trailing white space is dropped, and so are
// blank lines; NUL bytes, which IRC cannot carry, are dropped too.
func splitReply(text string, max int) []string {
	text = strings.ReplaceAll(text, "\x00", "")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" {
			continue
		}
		out = append(out, splitLine(line, max)...)
	}
	return out
}

// splitLine wraps line into pieces of at most max bytes (max ≥ 4). Only
// the spaces where it wraps are lost.
func splitLine(line string, max int) []string {
	var out []string
	for len(line) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		if cut == 0 { // invalid UTF-8: cut anywhere
			cut = max
		}
		next := cut
		if sp := strings.LastIndexByte(line[:cut+1], ' '); sp >= cut*3/4 && sp > 0 {
			cut, next = sp, sp+1 // the space becomes the line break
		}
		out = append(out, line[:cut])
		line = line[next:]
	}
	return append(out, line)
}

// cutLines keeps at most max lines, the last of them a note of how many
// were left out.
func cutLines(lines []string, max int) []string {
	if len(lines) <= max {
		return lines
	}
	kept := lines[: max-1 : max-1]
	return append(kept, fmt.Sprintf("… [cut: %d more lines not shown]", len(lines)-len(kept)))
}
