package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// sessions issues and checks session tickets. A ticket is "<id>.<mac>":
// the browser keeps it and presents it on every connection, so its user
// keeps one immutable id (Peer.Id "web:<id>") across reconnects and reloads
// but cannot choose another user's.
//
// The key comes from the token when there is one, so that gateway replicas
// sharing a token accept each other's tickets; without a token it is random
// per process, and a restart gives every browser a new id.
type sessions struct{ key []byte }

func newSessions(token string) sessions {
	if token != "" {
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("botmesh web session key v1"))
		return sessions{key: m.Sum(nil)}
	}
	return sessions{key: []byte(rand.Text())}
}

// issue returns a new session id and its ticket.
func (s sessions) issue() (id, ticket string) {
	id = randomID()
	return id, id + "." + s.mac(id)
}

// check returns the id of a valid ticket.
func (s sessions) check(ticket string) (string, bool) {
	id, mac, ok := strings.Cut(ticket, ".")
	if !ok || !validID(id, maxIDLen) {
		return "", false
	}
	return id, hmac.Equal([]byte(mac), []byte(s.mac(id)))
}

func (s sessions) mac(id string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// randomID returns 128 random bits as 22 URL-safe characters.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenEqual compares a presented token with the configured one in time
// that does not depend on where they differ or on their lengths.
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}
