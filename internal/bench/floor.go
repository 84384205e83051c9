package bench

// A command crosses NATS twice more than a raw go-micro call (gateway →
// router, router → gateway) and makes one go-micro call (router → command
// service → router), so the least the mesh can cost is one raw go-micro
// call plus two raw NATS request-replies, measured in the same run: the
// composite floor.
//
// Costs add up along the path: CPU per command is micro's + 2 × nats's,
// and single-flight latency (p50) is micro's + 2 × nats's. Throughput
// composes as the time per command does when every part shares the same
// CPUs (the bench's case: every process on one machine, CPU-bound at
// concurrency 64): 1/floor = 1/micro + 2/nats, the rate at which the three
// calls could be made one after another with the machine's whole capacity.

// Floor is the composite floor at one concurrency.
type Floor struct {
	Concurrency int `json:"concurrency"`
	// PerSecond is 1 / (1/micro + 2/nats) of the baselines' commands/s.
	PerSecond float64 `json:"commands_per_second"`
	// P50 is micro's p50 + 2 × nats's, in µs.
	P50 float64 `json:"p50_us"`
	// CPUPerCommand is micro's + 2 × nats's, in µs.
	CPUPerCommand float64 `json:"cpu_us_per_command"`
}

// FloorRatios are a run's figures divided by the floor's at the same
// concurrency. The targets of issue 17 are CPUPerCommand ≤ 1.3 and
// PerSecond ≥ 0.8 at concurrency 64.
type FloorRatios struct {
	CPUPerCommand float64 `json:"cpu_us_per_command"`
	PerSecond     float64 `json:"commands_per_second"`
	P50           float64 `json:"p50"`
}

// Targets of the mesh against the floor (issue 17), at the configured
// concurrency.
const (
	TargetFloorCPU        = 1.3
	TargetFloorThroughput = 0.8
)

// floorOf composes the floor from the raw NATS and raw go-micro runs at
// one concurrency; ok is false if either is missing or measured nothing.
func floorOf(natsRun, microRun Result) (f Floor, ok bool) {
	if natsRun.PerSecond <= 0 || microRun.PerSecond <= 0 || natsRun.Concurrency != microRun.Concurrency {
		return Floor{}, false
	}
	return Floor{
		Concurrency:   natsRun.Concurrency,
		PerSecond:     1 / (1/microRun.PerSecond + 2/natsRun.PerSecond),
		P50:           microRun.Latency.P50 + 2*natsRun.Latency.P50,
		CPUPerCommand: microRun.CPUPerCommand + 2*natsRun.CPUPerCommand,
	}, true
}

// vsFloor divides r's figures by f's.
func vsFloor(r Result, f Floor) *FloorRatios {
	return &FloorRatios{
		CPUPerCommand: div(r.CPUPerCommand, f.CPUPerCommand),
		PerSecond:     div(r.PerSecond, f.PerSecond),
		P50:           div(r.Latency.P50, f.P50),
	}
}

// compare gives each mesh run its ratios to the baselines and to the
// composite floor measured at the same concurrency (the baselines run
// with the mesh over the configured transport; the seed's run is compared
// with the same ones).
func (r *Report) compare() {
	r.Floors = nil
	base := map[int]map[string]Result{}
	for _, run := range r.Runs {
		if run.Name == RunNATS || run.Name == RunMicro {
			if base[run.Concurrency] == nil {
				base[run.Concurrency] = map[string]Result{}
			}
			base[run.Concurrency][run.Name] = run
		}
	}
	for i, run := range r.Runs {
		bs := base[run.Concurrency]
		if !isMesh(run.Name) || len(bs) == 0 {
			continue
		}
		r.Runs[i].Vs = map[string]Ratios{}
		for name, b := range bs {
			r.Runs[i].Vs[name] = ratios(run, b)
		}
		f, ok := floorOf(bs[RunNATS], bs[RunMicro])
		if !ok {
			continue
		}
		if r.floor(run.Concurrency) == nil {
			r.Floors = append(r.Floors, f)
		}
		r.Runs[i].VsFloor = vsFloor(run, f)
	}
}

// floor returns the floor at concurrency c, nil if there is none.
func (r *Report) floor(c int) *Floor {
	for i := range r.Floors {
		if r.Floors[i].Concurrency == c {
			return &r.Floors[i]
		}
	}
	return nil
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
