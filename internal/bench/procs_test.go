package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// statLine is a /proc/<pid>/stat line of a process named comm (which the
// process chooses: it may hold spaces and parentheses) with utime and
// stime ticks.
func statLine(comm string, utime, stime uint32) []byte {
	return fmt.Appendf(nil, "4242 (%s) S 1 4242 4242 0 -1 4194560 1234 0 0 0 %d %d 0 0 20 0 9 0 1000 1881112 7361 18446744073709551615\n", comm, utime, stime)
}

func TestParseStat(t *testing.T) {
	tick := time.Second / time.Duration(clockTicks())
	for _, comm := range []string{"router", "nats-server", "a b", "x) S 1 2 3 4 5 6 7 8 9 10 11 999999 999999 (y", ")", "(", ""} {
		d, err := parseStat(statLine(comm, 150, 50))
		if err != nil || d != 200*tick {
			t.Errorf("comm %q: %v, %v; want %v", comm, d, err, 200*tick)
		}
	}
	for _, bad := range []string{"", "4242 router S 1", "4242 (router) S 1 2 3", "4242 (router) S 1 2 3 4 5 6 7 8 9 10 x y 0"} {
		if d, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) = %v, no error", bad, d)
		} else if !strings.HasPrefix(err.Error(), "bench: ") {
			t.Errorf("parseStat(%q): error %q does not say where it comes from", bad, err)
		}
	}
}

// FuzzParseStat: whatever name a process gives itself, its CPU time is
// read from the fields after the name.
func FuzzParseStat(f *testing.F) {
	f.Add("router", uint32(150), uint32(50))
	f.Add("x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 (y", uint32(0), uint32(7))
	f.Add("))((", uint32(1), uint32(0))
	tick := time.Second / time.Duration(clockTicks())
	f.Fuzz(func(t *testing.T, comm string, utime, stime uint32) {
		if strings.ContainsAny(comm, "\n\x00") {
			return // the kernel's task names hold neither
		}
		d, err := parseStat(statLine(comm, utime, stime))
		if want := time.Duration(uint64(utime)+uint64(stime)) * tick; err != nil || d != want {
			t.Errorf("comm %q: %v, %v; want %v", comm, d, err, want)
		}
	})
}
