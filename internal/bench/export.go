package bench

import "time"

// The measuring helpers below serve other benchmarks of the project
// (internal/peerbench) as they serve botbench.

// ProcessCPU returns the user+system CPU time process pid (0: this
// process) has used, from /proc/<pid>/stat.
func ProcessCPU(pid int) (time.Duration, error) { return cpuOf(pid) }

// PeakRSS returns the peak resident set of pid (0: this process) in KiB.
func PeakRSS(pid int) (int64, error) { return peakRSS(pid) }

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort() (int, error) { return freePort() }

// Tail returns the last n bytes of file (a log), or why it cannot be read.
func Tail(file string, n int) string { return tail(file, n) }

// Percentiles summarises latencies as botbench does.
func Percentiles(lat []time.Duration) Latency {
	r := &recorder{lat: lat}
	_, _, l, _ := r.summary()
	return l
}
