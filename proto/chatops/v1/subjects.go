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
	// bot.v1.out.<gateway-instance>.<n>. Routers publish nowhere else.
	SubjectOutPrefix = "bot.v1.out."
)

// SubjectIn returns the subject on which a gateway publishes a message from
// platform.
func SubjectIn(platform string) string { return SubjectInPrefix + platform }

// SubjectOut returns the subject a gateway instance subscribes to for
// replies (a wildcard over its reply tokens).
func SubjectOut(gateway string) string { return SubjectOutPrefix + gateway + ".>" }

// ReplySubject returns the reply subject for message token n of a gateway
// instance.
func ReplySubject(gateway, token string) string { return SubjectOutPrefix + gateway + "." + token }

// ValidReplySubject reports whether s is a reply subject a router may publish
// to: under bot.v1.out., with no wildcard and no empty token.
func ValidReplySubject(s string) bool {
	if !strings.HasPrefix(s, SubjectOutPrefix) || len(s) == len(SubjectOutPrefix) {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
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
