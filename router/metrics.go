package router

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the router's Prometheus series.
type metrics struct {
	messages *prometheus.CounterVec
	commands *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu        sync.Mutex
	platforms map[string]bool // label values seen, at most maxPlatforms
}

// maxPlatforms bounds the platform label: the value comes from publishers,
// and a forged one must not grow the series without end.
const maxPlatforms = 32

func newMetrics() *metrics {
	return &metrics{
		platforms: map[string]bool{},
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botmesh_router_messages_total", Help: "Messages the router handled, by platform.",
		}, []string{"platform"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botmesh_router_commands_total", Help: "Commands by name and outcome (ok, error, timeout, unknown, denied, confirm, cancelled, limited, rejected).",
		}, []string{"command", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "botmesh_router_command_duration_seconds", Help: "Time from receipt to reply, by command.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"command"}),
	}
}

// Register adds the router's metrics to reg: its own counters and
// histograms, gauges of the messages in flight and of the command services
// it knows.
func (r *Router) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		r.metrics.messages, r.metrics.commands, r.metrics.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "botmesh_router_inflight", Help: "Messages being handled now."}, func() float64 {
			return float64(len(r.sem))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "botmesh_router_command_services", Help: "Command services in the registry view."}, func() float64 {
			return float64(r.dir.Services())
		}),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// observe counts one handled message. Unknown words never become labels.
func (r *Router) observe(platform string, out outcome, seconds float64) {
	command := out.command
	if command == "" {
		command = "(none)"
	}
	r.metrics.messages.WithLabelValues(r.metrics.platform(platform)).Inc()
	r.metrics.commands.WithLabelValues(command, out.status).Inc()
	r.metrics.duration.WithLabelValues(command).Observe(seconds)
}

func (m *metrics) platform(p string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.platforms[p] {
		return p
	}
	if len(m.platforms) >= maxPlatforms {
		return "(other)"
	}
	m.platforms[p] = true
	return p
}
