package audit

import "time"

// SetRepublishFor sets how long a record is published again before it is
// given up, for tests; it returns the earlier value.
func SetRepublishFor(d time.Duration) time.Duration {
	old := republishFor
	republishFor = d
	return old
}
