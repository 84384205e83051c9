package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"time"
)

// Sessions (issue 12). The token, when there is one, admits a person; it
// does not let them say who they are. Who they are is the server's choice:
// a session, made when a browser says hello without one, with a random id
// (the user is "web:<id>") and a random secret of sessionSecretBytes bytes.
// The browser gets the ticket "<id>.<secret>" and keeps it (sessionStorage,
// one tab) to come back as the same user after a reconnect or a reload.
// The server keeps only a hash of the secret, in memory; nothing about a
// session can be computed from the token, so a ticket the server did not
// issue, or has forgotten, is refused.
//
// Sessions are per process: a restarted gateway, or another replica behind
// a load balancer, does not know them, and its browsers are refused with
// CodeUnknownSession and ask for a new one (a new user id). Before issue
// 12 the key was derived from the token, so that replicas shared them; but
// then anyone with the token could make the ticket of any id.
const (
	// sessionSecretBytes is the secret's length: 256 bits from crypto/rand.
	sessionSecretBytes = 32
	// sessionTTL is how long a session with no open connection is
	// remembered: a tab closed (or a laptop asleep) for longer starts as a
	// new user. A session with an open connection does not expire.
	sessionTTL = 24 * time.Hour
	// maxSessions bounds the sessions remembered (about 150 bytes each):
	// past it, the one idle the longest is forgotten to make room, so
	// that a token holder opening connections in a loop costs memory
	// only up to here.
	maxSessions = 1 << 16
)

// sessions is the server-side table of sessions. Its mu is never held
// with Input.mu.
type sessions struct {
	mu        sync.Mutex
	m         map[string]*session // by id
	now       func() time.Time    // time.Now; tests move it
	lastSweep time.Time
}

// session is one issued session.
type session struct {
	hash [sha256.Size]byte // of the secret
	open int               // connections using it
	last time.Time         // when the last one closed (or it was made)
}

func newSessions() *sessions {
	return &sessions{m: map[string]*session{}, now: time.Now}
}

// issue makes a session, counts one connection on it, and returns its id
// and ticket.
func (s *sessions) issue() (id, ticket string) {
	var secret [sessionSecretBytes]byte
	_, _ = rand.Read(secret[:]) // never fails (crypto/rand)
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	for {
		id = randomID()
		if s.m[id] == nil { // 128 random bits: a repeat is not expected
			break
		}
	}
	s.m[id] = &session{hash: sha256.Sum256([]byte(sec)), open: 1, last: now}
	return id, id + "." + sec
}

// Why resume refuses a ticket.
var (
	errSessionUnknown = errors.New("web: session unknown or expired")       // forged, or from before a restart
	errSessionSecret  = errors.New("web: wrong secret for a known session") // forged: someone tried to be someone else
)

// resume checks a ticket and, if it is one this server issued and has not
// forgotten, counts one connection on its session and returns its id.
func (s *sessions) resume(ticket string) (string, error) {
	id, sec, ok := strings.Cut(ticket, ".")
	if !ok || id == "" || sec == "" {
		return "", errSessionUnknown
	}
	h := sha256.Sum256([]byte(sec))
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[id]
	switch {
	case ss == nil:
		return "", errSessionUnknown
	case subtle.ConstantTimeCompare(h[:], ss.hash[:]) != 1:
		return "", errSessionSecret
	case ss.open == 0 && s.now().Sub(ss.last) > sessionTTL:
		delete(s.m, id)
		return "", errSessionUnknown
	}
	ss.open++
	return id, nil
}

// release says a connection of session id closed.
func (s *sessions) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.m[id]; ss != nil && ss.open > 0 {
		ss.open--
		ss.last = s.now()
	}
}

// sweep forgets expired sessions, at most once every sweepInterval, and
// makes room for one more below maxSessions. s.mu is held.
func (s *sessions) sweep(now time.Time) {
	if now.Sub(s.lastSweep) > sweepInterval || len(s.m) >= maxSessions {
		s.lastSweep = now
		for id, ss := range s.m {
			if ss.open == 0 && now.Sub(ss.last) > sessionTTL {
				delete(s.m, id)
			}
		}
	}
	if len(s.m) < maxSessions {
		return
	}
	oldest := ""
	for id, ss := range s.m {
		if ss.open == 0 && (oldest == "" || ss.last.Before(s.m[oldest].last)) {
			oldest = id
		}
	}
	if oldest != "" { // else every one is in use: go over the bound
		delete(s.m, oldest)
	}
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
