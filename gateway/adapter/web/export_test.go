package web

import "time"

// The history's caps, for the tests.
const (
	HistoryMax   = historyMax
	HistoryBytes = historyBytes
)

// Unwritten returns how many replies the open connections have yet to
// write: a writer behind the history.
func (in *Input) Unwritten() (n uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for c := range in.live {
		if c.cv != nil {
			n += c.cv.seq - c.sent
		}
	}
	return n
}

// SessionTTL is how long a session with no open connection is remembered.
const SessionTTL = sessionTTL

// PassTime moves the sessions' clock forward by d.
func (in *Input) PassTime(d time.Duration) {
	in.sess.mu.Lock()
	defer in.sess.mu.Unlock()
	now := in.sess.now
	in.sess.now = func() time.Time { return now().Add(d) }
}

// Sessions returns how many sessions the input remembers.
func (in *Input) Sessions() int {
	in.sess.mu.Lock()
	defer in.sess.mu.Unlock()
	return len(in.sess.m)
}

// Live returns how many websockets are open (their sessions released once
// it drops).
func (in *Input) Live() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.live)
}
