package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus series.
type metrics struct {
	messages *prometheus.CounterVec
	refused  *prometheus.CounterVec
	replies  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botmesh_gateway_messages_total", Help: "Messages passed to the routers, by input.",
		}, []string{"input"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botmesh_gateway_refused_total", Help: "Messages not passed on, by input and reason (too_long, duplicate, unreachable, not_confirmed).",
		}, []string{"input", "reason"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botmesh_gateway_replies_total", Help: "Answers posted, by input and kind (reply, error, progress, queued, recovered, late, no_router, timeout, dropped_duplicate).",
		}, []string{"input", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "botmesh_gateway_reply_seconds", Help: "Time from passing a message on to its final reply, by input.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"input"}),
	}
}

// Register adds the gateway's metrics to reg.
func (g *Gateway) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		g.metrics.messages, g.metrics.refused, g.metrics.replies, g.metrics.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "botmesh_gateway_pending", Help: "Messages waiting for their reply."}, func() float64 {
			g.mu.Lock()
			defer g.mu.Unlock()
			return float64(len(g.pending))
		}),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Healthy reports whether every input that can tell is connected.
func (g *Gateway) Healthy() error {
	var errs []error
	for _, r := range g.inputs {
		if h, ok := r.in.(adapter.Healther); ok {
			if err := h.Healthy(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.in, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (g *Gateway) observeReply(r *running, p *pending) {
	g.metrics.latency.WithLabelValues(r.in.String()).Observe(time.Since(p.sent).Seconds())
}
