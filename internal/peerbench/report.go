package peerbench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Figures is what one run measured of one bot.
type Figures struct {
	// Single is one command at a time; Parallel every user with a command
	// in flight; SlowMix the same with one user running slow commands
	// (its Commands and PerSecond are the others' echo commands).
	Single   Phase `json:"single"`
	Parallel Phase `json:"parallel"`
	SlowMix  Phase `json:"slow_mix"`
	// IdleCPU is the bot's CPU while nothing is asked, in ms per second.
	IdleCPU float64 `json:"idle_cpu_ms_per_s"`
	// PeakRSS is the bot process's peak resident memory, in MiB.
	PeakRSS float64 `json:"peak_rss_mib"`
}

// BotRun is one bot's run in one round.
type BotRun struct {
	Round   int     `json:"round"`
	Bot     string  `json:"bot"`
	Figures Figures `json:"figures"`
}

// Report is the outcome of a bench.
type Report struct {
	Date     string `json:"date"`
	Users    int    `json:"users"`
	Rounds   int    `json:"rounds"`
	Single   int    `json:"single"`
	Duration string `json:"duration"`
	Slow     string `json:"slow"`
	Idle     string `json:"idle"`
	// ErrbotAsync is Errbot's BOT_ASYNC.
	ErrbotAsync bool `json:"errbot_async"`
	// Bots are the bots measured; ErrbotMissing says why Errbot is not
	// among them.
	Bots          []string `json:"bots"`
	ErrbotMissing string   `json:"errbot_missing,omitempty"`
	// Runs are every run; Medians the median of each figure per bot;
	// Ratios botmesh ÷ Errbot of the medians, by row name.
	Runs    []BotRun           `json:"runs"`
	Medians map[string]Figures `json:"medians"`
	Ratios  map[string]float64 `json:"ratios,omitempty"`
}

// row is one line of the table: a figure, how to show it, and which way
// is better.
type row struct {
	key    string // in Ratios
	label  string
	unit   string
	scale  float64 // shown value = figure × scale
	format string
	higher bool // higher is better
	get    func(*Figures) *float64
}

var rows = []row{
	{"single_p50", "one at a time, p50", "ms", 1e-3, "%.2f", false, func(f *Figures) *float64 { return &f.Single.Latency.P50 }},
	{"single_p90", "one at a time, p90", "ms", 1e-3, "%.2f", false, func(f *Figures) *float64 { return &f.Single.Latency.P90 }},
	{"single_cpu", "one at a time, bot CPU per command", "µs", 1, "%.0f", false, func(f *Figures) *float64 { return &f.Single.CPUPerCommand }},
	{"single_server_cpu", "one at a time, Prosody CPU per command", "µs", 1, "%.0f", false, func(f *Figures) *float64 { return &f.Single.ServerCPUPerCommand }},
	{"parallel_rate", "users in flight, commands/s", "", 1, "%.0f", true, func(f *Figures) *float64 { return &f.Parallel.PerSecond }},
	{"parallel_p50", "users in flight, p50", "ms", 1e-3, "%.2f", false, func(f *Figures) *float64 { return &f.Parallel.Latency.P50 }},
	{"parallel_cpu", "users in flight, bot CPU per command", "µs", 1, "%.0f", false, func(f *Figures) *float64 { return &f.Parallel.CPUPerCommand }},
	{"parallel_server_cpu", "users in flight, Prosody CPU per command", "µs", 1, "%.0f", false, func(f *Figures) *float64 { return &f.Parallel.ServerCPUPerCommand }},
	{"slow_mix_rate", "one user's slow in the mix, others' commands/s", "", 1, "%.0f", true, func(f *Figures) *float64 { return &f.SlowMix.PerSecond }},
	{"slow_mix_p90", "one user's slow in the mix, others' p90", "ms", 1e-3, "%.2f", false, func(f *Figures) *float64 { return &f.SlowMix.Latency.P90 }},
	{"idle_cpu", "idle, bot CPU", "ms/s", 1, "%.2f", false, func(f *Figures) *float64 { return &f.IdleCPU }},
	{"peak_rss", "peak RSS", "MiB", 1, "%.1f", false, func(f *Figures) *float64 { return &f.PeakRSS }},
}

// summarise fills Medians and Ratios from Runs.
func (r *Report) summarise() {
	r.Medians = map[string]Figures{}
	for _, b := range r.Bots {
		var m Figures
		for _, row := range rows {
			var vs []float64
			for i := range r.Runs {
				if r.Runs[i].Bot == b {
					vs = append(vs, *row.get(&r.Runs[i].Figures))
				}
			}
			*row.get(&m) = median(vs)
		}
		r.Medians[b] = m
	}
	mesh, okMesh := r.Medians[Botmesh]
	peer, okPeer := r.Medians[Errbot]
	if !okMesh || !okPeer {
		return
	}
	r.Ratios = map[string]float64{}
	for _, row := range rows {
		if p := *row.get(&peer); p != 0 {
			r.Ratios[row.key] = *row.get(&mesh) / p
		}
	}
}

// median returns the median of vs (the mean of the middle two for an
// even count), 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// ReadReport reads a report that WriteJSON wrote to file.
func ReadReport(file string) (*Report, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("peerbench: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("peerbench: %s is not a report of peerbench --json: %w", file, err)
	}
	return &r, nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the table of medians and ratios, as Markdown.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "peerbench %s: %d users in 1:1 chats through one Prosody; medians of %d round(s); %d commands one at a time, %s per phase in flight, slow = %s, idle %s\n\n",
		r.Date, r.Users, r.Rounds, r.Single, r.Duration, r.Slow, r.Idle)
	_, peer := r.Medians[Errbot]
	if peer {
		b.WriteString("| | | botmesh | Errbot | botmesh ÷ Errbot | better |\n| --- | --- | ---: | ---: | ---: | --- |\n")
	} else {
		b.WriteString("| | | botmesh |\n| --- | --- | ---: |\n")
	}
	mesh := r.Medians[Botmesh]
	errbot := r.Medians[Errbot]
	for _, row := range rows {
		show := func(f *Figures) string { return fmt.Sprintf(row.format, *row.get(f)*row.scale) }
		if !peer {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", row.label, row.unit, show(&mesh))
			continue
		}
		ratio := "—"
		if v, ok := r.Ratios[row.key]; ok {
			ratio = fmt.Sprintf("%.2f", v)
		}
		better := "lower"
		if row.higher {
			better = "higher"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", row.label, row.unit, show(&mesh), show(&errbot), ratio, better)
	}
	if peer {
		async := "False (see errbot#1598: with True a reply over XMPP waits for the next incoming stanza)"
		if r.ErrbotAsync {
			async = "True"
		}
		fmt.Fprintf(&b, "\nErrbot ran with BOT_ASYNC = %s.\n", async)
	}
	if r.ErrbotMissing != "" {
		fmt.Fprintf(&b, "\n%s: botmesh alone was measured.\n", r.ErrbotMissing)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
