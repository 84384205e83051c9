package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Packages are the binaries the bench runs, by file name, as `go build`
// names them.
var Packages = map[string]string{
	"nats-server": "github.com/nats-io/nats-server/v2",
	"router":      "github.com/botmesh/botmesh/router/cmd/router",
	"gateway":     "github.com/botmesh/botmesh/gateway/cmd/gateway",
	"echo":        "github.com/botmesh/botmesh/services/echo/cmd/echo",
	"query":       "github.com/botmesh/botmesh/services/query/cmd/query",
	"botmesh":     "github.com/botmesh/botmesh/cmd/botmesh",
}

// Build builds the binaries into dir with `go build` (run in the current
// directory, which must be inside the botmesh workspace).
func Build(ctx context.Context, dir string) error {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, p := range []string{"nats-server", "router", "gateway", "echo", "query", "botmesh"} {
		args = append(args, Packages[p])
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: go build (run inside the botmesh tree, or pass --bin): %w\n%s", err, out)
	}
	return nil
}

// proc is a process of the mesh under test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // file with its stderr
	done chan struct{}
	err  error
}

// procs starts and stops the processes of one bench run.
type procs struct {
	bin string
	dir string // logs and NATS store

	mu   sync.Mutex
	list []*proc
}

func (ps *procs) start(name, binary string, args ...string) (*proc, error) {
	return ps.startWith(name, binary, nil, args...)
}

// startPiped starts a process whose stdin and stdout are pipes to the
// bench (a gateway with the shell input): it returns them with the process.
func (ps *procs) startPiped(name, binary string, args ...string) (*proc, io.WriteCloser, io.ReadCloser, error) {
	var (
		stdin  io.WriteCloser
		stdout io.ReadCloser
	)
	p, err := ps.startWith(name, binary, func(cmd *exec.Cmd) (err error) {
		cmd.Stdout = nil
		if stdin, err = cmd.StdinPipe(); err != nil {
			return err
		}
		stdout, err = cmd.StdoutPipe()
		return err
	}, args...)
	return p, stdin, stdout, err
}

// startWith starts binary as name, its output in a log file; setup, if
// not nil, can change the command before it starts.
func (ps *procs) startWith(name, binary string, setup func(*exec.Cmd) error, args ...string) (*proc, error) {
	logFile := filepath.Join(ps.dir, name+".log")
	f, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	p := &proc{name: name, cmd: exec.Command(filepath.Join(ps.bin, binary), args...), log: logFile, done: make(chan struct{})}
	p.cmd.Stderr = f
	p.cmd.Stdout = f
	if setup != nil {
		if err := setup(p.cmd); err != nil {
			return nil, fmt.Errorf("bench: start %s: %w", name, err)
		}
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// failed returns a description of the processes that exited, with the
// end of their logs.
func (ps *procs) failed() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var errs []error
	for _, p := range ps.list {
		select {
		case <-p.done:
			errs = append(errs, fmt.Errorf("%s exited (%v); its log ends:\n%s", p.name, p.err, tail(p.log, 2000)))
		default:
		}
	}
	return errors.Join(errs...)
}

// stop stops p with SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// remove stops p and forgets it: its exit is not a failure of the run.
func (ps *procs) remove(p *proc) {
	p.stop(10 * time.Second)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.list = slices.DeleteFunc(ps.list, func(q *proc) bool { return q == p })
}

// stopAll stops every process, the last started first.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := append([]*proc(nil), ps.list...)
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(10 * time.Second)
	}
}

func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr accepts TCP connections.
func waitListening(ctx context.Context, addr string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: nothing listens on %s after %s", addr, within)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// usage is the CPU time a process has used.
type usage = time.Duration

// cpuOf returns the user+system CPU time of process pid (0: this process).
func cpuOf(pid int) (usage, error) {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, err
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads utime+stime from the text of /proc/<pid>/stat.
func parseStat(b []byte) (usage, error) {
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after it start at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bench: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("bench: short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("bench: /proc stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / time.Duration(clockTicks()), nil
}

// clockTicks returns the kernel's clock ticks per second (AT_CLKTCK of the
// auxiliary vector; 100 if unknown).
var clockTicks = sync.OnceValue(func() uint64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	const atClkTck = 17
	for i := 0; i+16 <= len(b); i += 16 {
		k, v := binary.LittleEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i+8:])
		if k == atClkTck && v > 0 {
			return v
		}
		if k == 0 {
			break
		}
	}
	return 100
})

// peakRSS returns the peak resident set of pid (0: this process) in KiB,
// since it started or since resetPeak.
func peakRSS(pid int) (int64, error) { return statusKiB(pid, "VmHWM") }

// rss returns the resident set of pid (0: this process) in KiB.
func rss(pid int) (int64, error) { return statusKiB(pid, "VmRSS") }

// statusKiB returns the figure key (in kB) of /proc/<pid>/status.
func statusKiB(pid int, key string) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("bench: no %s in %s", key, path)
}

// preciseCPU returns the CPU time pid has used, to the nanosecond: the sum
// of its threads' se.sum_exec_runtime (/proc/<pid>/task/*/sched), where
// /proc/<pid>/stat counts in clock ticks (10 ms), too coarse for a process
// at rest. A thread that ends between two readings takes its time with it
// (Go's threads seldom end). Without those files it falls back to cpuOf.
func preciseCPU(pid int) (usage, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var sum usage
	read := 0
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/sched", pid, t.Name()))
		if err != nil {
			continue // the thread ended, or no CONFIG_SCHED_DEBUG
		}
		if d, ok := parseSched(b); ok {
			sum += d
			read++
		}
	}
	if read == 0 {
		return cpuOf(pid)
	}
	return sum, nil
}

// parseSched reads se.sum_exec_runtime (milliseconds, with a fraction)
// from the text of /proc/<pid>/task/<tid>/sched.
func parseSched(b []byte) (usage, bool) {
	for l := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, "se.sum_exec_runtime")
		if !ok {
			continue
		}
		_, v, ok := strings.Cut(rest, ":")
		if !ok {
			return 0, false
		}
		ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || ms < 0 {
			return 0, false
		}
		return usage(ms * float64(time.Millisecond)), true
	}
	return 0, false
}

// resetPeak resets the peak resident set of pid (0: this process) to its
// current size (Linux clear_refs 5), so that peaks are per run. It reports
// whether the kernel allowed it.
func resetPeak(pid int) bool {
	path := "/proc/self/clear_refs"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/clear_refs", pid)
	}
	return os.WriteFile(path, []byte("5"), 0) == nil
}
