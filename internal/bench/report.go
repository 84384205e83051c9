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
		return nil, fmt.Errorf("bench: %s: %w", file, err)
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
	for _, run := range r.Runs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t\n", run.Name, run.Concurrency, run.Commands, run.Errors,
			run.PerSecond, run.Latency.P50, run.Latency.P90, run.Latency.P99, run.Latency.Max, run.CPUPerCommand, float64(totalRSS(run))/1024)
		for _, base := range sortedKeys(run.Vs) {
			v := run.Vs[base]
			fmt.Fprintf(tw, "  × %s\t\t\t\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", base, v.PerSecond, v.P50, v.P90, v.P99, v.Max, v.CPUPerCommand, v.PeakRSS)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, run := range r.Runs {
		if run.Name != "mesh" {
			continue
		}
		fmt.Fprintf(w, "\nmesh at concurrency %d, by process:", run.Concurrency)
		for _, p := range sortedKeys(run.CPUByProcess) {
			fmt.Fprintf(w, "  %s %.1f µs/cmd %.1f MiB;", p, run.CPUByProcess[p], float64(run.PeakRSS[p])/1024)
		}
		fmt.Fprintln(w)
		for _, u := range run.Unexpected {
			fmt.Fprintf(w, "  unexpected reply: %s\n", u)
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
