package deliver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay"
)

// Metrics are the delivery side's Prometheus metrics.
type Metrics struct {
	attempts    *prometheus.CounterVec
	coalesced   prometheus.Counter
	carried     prometheus.Counter
	finished    *prometheus.CounterVec
	latency     prometheus.Histogram
	inFlight    prometheus.Gauge
	leaseHeld   prometheus.Gauge
	claimErrors prometheus.Counter
	unrecorded  prometheus.Gauge
}

// NewMetrics registers the metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_delivery_attempts_total",
			Help: "Tries to send a delivery, by outcome (delivered, retry, permanent, uncertain) and reason.",
		}, []string{"outcome", "reason"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_delivery_coalesced_sends_total",
			Help: "Messages sent carrying more than one delivery (coalescing under a backlog).",
		}),
		carried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_delivery_carried_total",
			Help: "Deliveries sent inside another delivery's message (each also counts as an attempt).",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_delivery_transitions_total",
			Help: "Deliveries moved to a state by this replica's worker, by state.",
		}, []string{"state"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_delivery_latency_seconds",
			Help:    "Time from a delivery entering the queue to the server confirming it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_delivery_in_flight",
			Help: "Deliveries being sent right now by this replica.",
		}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_session_held",
			Help: "1 when this replica holds the UCWA session of the bot account and sends its deliveries.",
		}),
		claimErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_delivery_claim_errors_total",
			Help: "Failed attempts to take deliveries from the queue (database trouble); nothing is sent meanwhile.",
		}),
		unrecorded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_delivery_unrecorded_outcomes",
			Help: "Send outcomes kept in memory because the database could not take them; written when it is back, before anything new is claimed.",
		}),
	}
	for _, st := range relay.States {
		m.finished.WithLabelValues(string(st))
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.coalesced, m.carried, m.finished, m.latency, m.inFlight, m.leaseHeld, m.claimErrors, m.unrecorded)
	}
	return m
}
