package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(file string) (*Report, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r := &Report{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("bench: %s is not a report of botbench --json: %w", file, err)
	}
	return r, nil
}

// WriteText writes the report as tables for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	s := r.Setup
	dedup := "on"
	if !s.Dedup {
		dedup = "off"
	}
	fmt.Fprintf(w, "botbench: %d CPUs, %s; %q (request %d B, reply %d B); delivery %s, transport %s, %d router(s), gateway dedup %s\n\n",
		r.Host.CPUs, r.Host.GoVersion, s.Command, s.RequestBytes, s.ReplyBytes, s.Delivery, s.Transport, s.Routers, dedup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tconc\tcommands\terrors\tcmds/s\tp50 µs\tp90 µs\tp99 µs\tmax µs\tCPU µs/cmd\tpeak RSS MiB\t")
	floored := map[int]bool{}
	for _, run := range r.Runs {
		if f := r.floor(run.Concurrency); f != nil && isMesh(run.Name) && !floored[run.Concurrency] {
			floored[run.Concurrency] = true
			fmt.Fprintf(tw, "floor\t%d\t-\t-\t%.0f\t%.0f\t-\t-\t-\t%.1f\t-\t\n", f.Concurrency, f.PerSecond, f.P50, f.CPUPerCommand)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t\n", run.Name, run.Concurrency, run.Commands, run.Errors,
			run.PerSecond, run.Latency.P50, run.Latency.P90, run.Latency.P99, run.Latency.Max, run.CPUPerCommand, float64(totalRSS(run))/1024)
		for _, base := range sortedKeys(run.Vs) {
			v := run.Vs[base]
			fmt.Fprintf(tw, "  × %s\t\t\t\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", base, v.PerSecond, v.P50, v.P90, v.P99, v.Max, v.CPUPerCommand, v.PeakRSS)
		}
		if v := run.VsFloor; v != nil {
			fmt.Fprintf(tw, "  × floor\t\t\t\t%.2f\t%.2f\t-\t-\t-\t%.2f\t-\t\n", v.PerSecond, v.P50, v.CPUPerCommand)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Floors) > 0 {
		fmt.Fprintln(w, "\nfloor = one raw go-micro call + two raw NATS request-replies: CPU and p50 micro + 2 × nats, cmds/s 1 / (1/micro + 2/nats)")
	}
	for _, run := range r.Runs {
		if v := run.VsFloor; v != nil && run.Concurrency == s.Concurrency {
			fmt.Fprintf(w, "%s ÷ floor at concurrency %d: CPU %.2f (target ≤ %.1f: %s), throughput %.2f (target ≥ %.1f: %s), p50 %.2f\n",
				run.Name, run.Concurrency, v.CPUPerCommand, TargetFloorCPU, reached(v.CPUPerCommand <= TargetFloorCPU),
				v.PerSecond, TargetFloorThroughput, reached(v.PerSecond >= TargetFloorThroughput), v.P50)
		}
	}
	if s.Seed {
		fmt.Fprintf(w, "%s: the same mesh, the router calling echo over go-micro's http transport (the seed's way)\n", RunMeshHTTP)
	}
	for _, run := range r.Runs {
		if !isMesh(run.Name) {
			continue
		}
		fmt.Fprintf(w, "\n%s at concurrency %d, by process:", run.Name, run.Concurrency)
		for _, p := range sortedKeys(run.CPUByProcess) {
			fmt.Fprintf(w, "  %s %.1f µs/cmd %.1f MiB;", p, run.CPUByProcess[p], float64(run.PeakRSS[p])/1024)
		}
		fmt.Fprintln(w)
		for _, u := range run.Unexpected {
			fmt.Fprintf(w, "  unexpected reply: %s\n", u)
		}
	}
	if len(r.Idle) > 0 {
		fmt.Fprintf(w, "\nat rest (after one command, %.0f s each):\n", r.Idle[0].Seconds)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "part\tRSS MiB\tof which anon MiB\tCPU ms/s\t")
		for _, i := range r.Idle {
			note := ""
			if i.Process == IdleGateway {
				note = fmt.Sprintf("  target ≤ %d MiB: %s", TargetGatewayIdleMiB, reached(float64(i.RSS)/1024 <= TargetGatewayIdleMiB))
			}
			// The note is the line's last cell, outside the columns.
			fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.2f\t%s\n", i.Process, float64(i.RSS)/1024, float64(i.RSSAnon)/1024, i.CPUMillisPerSecond, note)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if a := r.AllInOne; a != nil {
		fmt.Fprintf(w, "\nall-in-one: first pong %.0f ms after start; burst of %d pings answered in %.0f ms (%.0f/s, %.1f µs CPU each, peak RSS %.1f MiB, %d errors)\n",
			a.ReadyMillis, a.Burst, a.BurstMillis, a.PerSecond, a.CPUPerCommand, float64(a.PeakRSS)/1024, a.Errors)
	}
	if d := r.Discovery; d != nil {
		fmt.Fprintf(w, "discovery: %s registered %.0f ms after its start, usable %.1f ms after registering\n", d.Service, d.RegisteredMillis, d.UsableMillis)
	}
	if len(r.Profiles) > 0 {
		fmt.Fprintf(w, "CPU profiles: %s\n", strings.Join(r.Profiles, " "))
	}
	return nil
}

func reached(ok bool) string {
	if ok {
		return "reached"
	}
	return "not reached"
}

func totalRSS(r Result) int64 {
	var t int64
	for _, v := range r.PeakRSS {
		t += v
	}
	return t
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Failed is the number of commands of the report that failed or got an
// unexpected reply, in every run and in the all-in-one's burst.
func (r *Report) Failed() int {
	n := 0
	for _, run := range r.Runs {
		n += run.Errors
	}
	if r.AllInOne != nil {
		n += r.AllInOne.Errors
	}
	return n
}

// Check says what the report lacks of what its setup asked for: a floor
// and its ratios for every mesh run (when the baselines ran), the seed's
// run at every concurrency of the mesh's, and every part at rest. A report
// written by an older botbench, or with renamed JSON fields, fails it.
func (r *Report) Check() error {
	var missing []string
	meshConcs, seedConcs, baseConcs := map[int]bool{}, map[int]bool{}, map[int]bool{}
	for _, run := range r.Runs {
		switch run.Name {
		case RunMesh:
			meshConcs[run.Concurrency] = true
		case RunMeshHTTP:
			seedConcs[run.Concurrency] = true
		case RunNATS, RunMicro:
			baseConcs[run.Concurrency] = true
		}
		if run.Commands == 0 {
			missing = append(missing, fmt.Sprintf("commands of run %s at concurrency %d", run.Name, run.Concurrency))
		}
		if isMesh(run.Name) && baseConcs[run.Concurrency] {
			if f := r.floor(run.Concurrency); f == nil || f.PerSecond <= 0 || f.CPUPerCommand <= 0 || f.P50 <= 0 {
				missing = append(missing, fmt.Sprintf("floor at concurrency %d", run.Concurrency))
			}
			if v := run.VsFloor; v == nil || v.PerSecond <= 0 || v.CPUPerCommand <= 0 || v.P50 <= 0 {
				missing = append(missing, fmt.Sprintf("vs_floor of run %s at concurrency %d", run.Name, run.Concurrency))
			}
		}
	}
	if len(meshConcs) == 0 {
		missing = append(missing, "run mesh")
	}
	if r.Setup.Seed {
		for _, c := range sortedInts(meshConcs) {
			if !seedConcs[c] {
				missing = append(missing, fmt.Sprintf("run %s at concurrency %d", RunMeshHTTP, c))
			}
		}
	}
	if r.Setup.IdleSeconds > 0 {
		parts := []string{IdleNATS, IdleRouter, IdleEcho, IdleGateway}
		if r.AllInOne != nil {
			parts = append(parts, IdleAllInOne)
		}
		for _, p := range parts {
			i := slices.IndexFunc(r.Idle, func(i Idle) bool { return i.Process == p || strings.HasPrefix(i.Process, p+"-") })
			if i < 0 || r.Idle[i].RSS <= 0 || r.Idle[i].Seconds <= 0 {
				missing = append(missing, "idle figures of "+p)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("bench: the report lacks: %s", strings.Join(missing, "; "))
	}
	return nil
}

func sortedInts(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
