package chatopsv1_test

import (
	"testing"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

func TestReplySubjects(t *testing.T) {
	for _, tc := range []struct {
		subject  string
		platform string // "" : not a valid reply subject
	}{
		{chatopsv1.ReplySubject("slack", "gw-1", "tok"), "slack"},
		{"bot.v1.out.irc.gw.t", "irc"},
		{"bot.v1.out.irc.gw.t.p", ""}, // a progress subject is not a reply_to
		{"bot.v1.out.irc.gw", ""},
		{"bot.v1.out.irc.*.t", ""},
		{"bot.v1.out.irc.gw.>", ""},
		{"bot.v1.out.irc..t", ""},
		{"bot.v1.in.irc.gw.t", ""},
		{"audit.secret", ""},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			if got := chatopsv1.ReplyPlatform(tc.subject); got != tc.platform {
				t.Errorf("ReplyPlatform(%q) = %q, want %q", tc.subject, got, tc.platform)
			}
			if got := chatopsv1.ValidReplySubject(tc.subject); got != (tc.platform != "") {
				t.Errorf("ValidReplySubject(%q) = %v", tc.subject, got)
			}
		})
	}
	if p := chatopsv1.PlatformOf("bot.v1.in.web"); p != "web" {
		t.Errorf("PlatformOf = %q", p)
	}
	for _, s := range []string{"bot.v1.in.", "bot.v1.in.a.b", "bot.v1.out.web"} {
		if p := chatopsv1.PlatformOf(s); p != "" {
			t.Errorf("PlatformOf(%q) = %q, want none", s, p)
		}
	}
}
