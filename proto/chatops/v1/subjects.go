package chatopsv1

import "strings"

// NATS subjects of the botmesh wire contract. The version is part of every
// subject, so v1 and a future v2 can run side by side.
const (
	// SubjectInPrefix starts the subjects gateways publish messages on:
	// bot.v1.in.<platform>.
	SubjectInPrefix = "bot.v1.in."
	// SubjectInAll matches every inbound subject; routers queue-subscribe
	// to it.
	SubjectInAll = SubjectInPrefix + ">"
	// SubjectOutPrefix starts the subjects replies go to:
	// bot.v1.out.<platform>.<gateway-instance>.<token>. Routers publish
	// nowhere else. The platform comes first so that NATS permissions can
	// give a gateway of one platform its replies and no others.
	SubjectOutPrefix = "bot.v1.out."
)

// SubjectIn returns the subject on which a gateway publishes a message from
// platform.
func SubjectIn(platform string) string { return SubjectInPrefix + platform }

// PlatformOf returns the platform of an inbound subject (bot.v1.in.<platform>),
// or "" if subject is not one.
func PlatformOf(subject string) string {
	p, ok := strings.CutPrefix(subject, SubjectInPrefix)
	if !ok || !ValidToken(p) {
		return ""
	}
	return p
}

// SubjectOut returns the subject a gateway instance subscribes to for the
// replies to its input for platform (a wildcard over its reply tokens).
func SubjectOut(platform, gateway string) string {
	return SubjectOutPrefix + platform + "." + gateway + ".>"
}

// SubjectOutFinal returns the subject that matches the final replies to a
// gateway instance's input for platform: the platform's reply stream keeps
// them. Progress notes go one token deeper (ProgressSubject) and are not
// kept.
func SubjectOutFinal(platform, gateway string) string {
	return SubjectOutPrefix + platform + "." + gateway + ".*"
}

// ReplySubject returns the reply subject for message token of a gateway
// instance's input for platform.
func ReplySubject(platform, gateway, token string) string {
	return SubjectOutPrefix + platform + "." + gateway + "." + token
}

// ProgressSubject returns the subject of the progress notes ("working on
// it…") for a message whose final reply goes to reply.
func ProgressSubject(reply string) string { return reply + ".p" }

// ReplyPlatform returns the platform of a reply subject, or "" if s is not
// a valid reply subject.
func ReplyPlatform(s string) string {
	if !ValidReplySubject(s) {
		return ""
	}
	p, _, _ := strings.Cut(s[len(SubjectOutPrefix):], ".")
	return p
}

// ValidReplySubject reports whether s is a reply subject a router may publish
// to: bot.v1.out. and three tokens (platform, instance, token), none empty or
// a wildcard.
func ValidReplySubject(s string) bool {
	rest, ok := strings.CutPrefix(s, SubjectOutPrefix)
	if !ok {
		return false
	}
	toks := strings.Split(rest, ".")
	if len(toks) != 3 {
		return false
	}
	for _, tok := range toks {
		if !ValidToken(tok) {
			return false
		}
	}
	return true
}

// ValidToken reports whether s can be one token of a subject (a platform or
// gateway instance name): non-empty, no dots, wildcards or white space.
func ValidToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ". \t\r\n*>")
}
