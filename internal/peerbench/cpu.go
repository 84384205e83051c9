package peerbench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// threadsCPU returns the time pid's live threads have spent on a CPU, in
// nanoseconds, from /proc/<pid>/task/*/schedstat (its first field).
// /proc/<pid>/stat counts in clock ticks (10 ms here), too coarse for the
// few milliseconds a second an idle bot uses; but a thread that ended is
// no longer counted here, so this serves the idle measure only, where no
// thread comes or goes.
func threadsCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("peerbench: no threads of process %d (has it exited?)", pid)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		ns, err := parseSchedstat(b)
		if err != nil {
			return 0, fmt.Errorf("peerbench: %s: %w", t, err)
		}
		sum += ns
	}
	return sum, nil
}

// parseSchedstat reads the time on CPU, the first of the three numbers of
// a schedstat file.
func parseSchedstat(b []byte) (time.Duration, error) {
	f := bytes.Fields(b)
	if len(f) != 3 {
		return 0, fmt.Errorf("not 3 numbers: %q", b)
	}
	ns, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil || ns < 0 {
		return 0, fmt.Errorf("bad time on CPU %q", f[0])
	}
	return time.Duration(ns), nil
}
