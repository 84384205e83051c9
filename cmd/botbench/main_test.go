package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// report is the JSON of the `make botbench` run in BENCHMARKS.md.
const report = "testdata/report-2026-12-06.json"

func TestShowAndCheck(t *testing.T) {
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"--show", report}, &out, &errs); err != nil {
		t.Fatalf("--show: %v", err)
	}
	for _, want := range []string{
		"      floor    64         -       -    6122    8728       -       -       -       179.9             -\n",
		"mesh ÷ floor at concurrency 64: CPU 2.91 (target ≤ 1.3: not reached), throughput 0.34 (target ≥ 0.8: not reached), p50 3.09\n",
		"  mesh-http    64     20000       0     874",
		"               gateway     29.3                4.9      0.24  target ≤ 20 MiB: not reached\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--show lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"--check", report}, &out, &errs); err != nil {
		t.Fatalf("--check of a complete report: %v", err)
	}
	if got := out.String(); got != report+": complete\n" {
		t.Errorf("--check said %q", got)
	}
}

func TestCheckIncomplete(t *testing.T) {
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		spoil func(map[string]any)
		want  string
	}{
		{"older botbench", func(r map[string]any) { delete(r, "floors"); delete(r, "idle") }, "floor at concurrency 64"},
		{"no parts at rest", func(r map[string]any) { delete(r, "idle") }, "idle figures of gateway"},
		{"renamed field", func(r map[string]any) {
			for _, i := range r["idle"].([]any) {
				m := i.(map[string]any)
				m["rss"] = m["rss_kib"]
				delete(m, "rss_kib")
			}
		}, "idle figures of echo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r map[string]any
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			tc.spoil(r)
			spoilt, _ := json.Marshal(r)
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(file, spoilt, 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errs bytes.Buffer
			err := run(context.Background(), []string{"--check", file}, &out, &errs)
			if err == nil || !strings.Contains(err.Error(), "the report lacks: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("--check = %v, want it to name %q", err, tc.want)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "bench.txt")
	if err := os.WriteFile(notJSON, []byte("botbench: 2 CPUs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--check", notJSON}, "is not a report of botbench --json"},
		{[]string{"--show", filepath.Join(dir, "none.json")}, "no such file"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
		{[]string{"--delivery", "carrier-pigeon", "--bin", dir}, "carrier-pigeon"},
	} {
		var out, errs bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("botbench %q = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
