package web

import (
	"testing"
	"time"
)

// Past maxSessions, a new session takes the place of the one idle the
// longest; sessions in use are kept.
func TestSessionsBounded(t *testing.T) {
	s := newSessions()
	now := time.Unix(1e9, 0)
	s.now = func() time.Time { return now }
	ids := make([]string, maxSessions)
	for i := range ids {
		now = now.Add(time.Millisecond)
		ids[i], _ = s.issue()
		if i > 0 { // the first stays open
			s.release(ids[i])
		}
	}
	_, ticket := s.issue()
	if n := len(s.m); n != maxSessions {
		t.Fatalf("%d sessions, want %d", n, maxSessions)
	}
	if s.m[ids[0]] == nil {
		t.Error("a session in use was forgotten")
	}
	if s.m[ids[1]] != nil {
		t.Error("the session idle the longest was kept")
	}
	if s.m[ids[2]] == nil {
		t.Error("another idle session was forgotten")
	}
	if _, err := s.resume(ticket); err != nil {
		t.Errorf("the new session: %v", err)
	}
}
