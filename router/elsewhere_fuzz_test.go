package router_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/botmesh/botmesh/router"
)

// FuzzParseConversation checks tell's CONVERSATION reader on any text: it
// never panics, and what it accepts is a platform word and an id without
// white space or control characters, written back (Conversation.String)
// as the same conversation.
func FuzzParseConversation(f *testing.F) {
	for _, s := range []string{"slack:#ops", "slack:C0123ABCD", "irc:#dev", "irc:alice", "xmpp:ops@conference.example.org?join",
		"xmpp:alice@example.org", "web:abc", "ops", ":", "slack:", "SLACK:#Ops", "irc:#a b", "teams:x\x00y", "xmpp:@", "slack:#ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := router.ParseConversation(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: an empty error", s)
			}
			return
		}
		if c.Platform == "" || c.Platform != strings.ToLower(c.Platform) || c.ID == "" {
			t.Fatalf("%q: accepted as %+v", s, c)
		}
		if strings.ContainsFunc(c.ID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			t.Fatalf("%q: id %q has white space or control characters", s, c.ID)
		}
		again, err := router.ParseConversation(c.String())
		if err != nil || again != c {
			t.Fatalf("%q: %+v written as %q reads as %+v, %v", s, c, c.String(), again, err)
		}
	})
}

// FuzzParseMailAddress checks mail's ADDRESS reader on any text: it never
// panics, and what it accepts is one user@domain address, its domain
// lower-case and returned too, that reads as itself.
func FuzzParseMailAddress(f *testing.F) {
	for _, s := range []string{"alice@example.com", "Alice@Example.COM", "<alice@example.com>", "mailto:alice@example.com",
		"<mailto:alice@example.com|alice@example.com>", "a@b@c", "alice", "@example.com", "alice@", "bob@[127.0.0.1]",
		"\"a b\"@example.com", "a\r\n@example.com", "Alice <alice@example.com>", "a@-x.com", "ü@example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, domain, err := router.ParseMailAddress(s)
		if err != nil {
			if addr != "" || domain != "" || err.Error() == "" {
				t.Fatalf("%q: refused with %q, %q, %v", s, addr, domain, err)
			}
			return
		}
		local, dom, ok := strings.Cut(addr, "@")
		if !ok || local == "" || strings.Contains(dom, "@") || dom != domain || domain != strings.ToLower(domain) || len(addr) > 254 {
			t.Fatalf("%q: accepted as %q, domain %q", s, addr, domain)
		}
		if strings.ContainsFunc(addr, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("<>\",;", r)
		}) {
			t.Fatalf("%q: address %q has characters a header could misread", s, addr)
		}
		again, d2, err := router.ParseMailAddress(addr)
		if err != nil || again != addr || d2 != domain {
			t.Fatalf("%q: %q reads as %q, %q, %v", s, addr, again, d2, err)
		}
	})
}
