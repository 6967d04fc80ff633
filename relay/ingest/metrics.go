package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	received       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	duplicates     *prometheus.CounterVec
	internalErrors *prometheus.CounterVec
	// fingerprintMismatches counts alerts whose sender-written fingerprint
	// is not the one computed from their labels.
	fingerprintMismatches *prometheus.CounterVec
	// capped counts notifications cut to max_messages_per_notification.
	capped *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_webhooks_received_total",
			Help: "Webhook requests received, by route and result.",
		}, []string{"route", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_ingest_duration_seconds",
			Help:    "Time from receiving a webhook request to answering it, commit included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_webhook_duplicates_total",
			Help: "Notifications recognised as duplicates inside the deduplication window, by route.",
		}, []string{"route"}),
		internalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_internal_errors_total",
			Help: "Requests answered 500 because relay itself failed (a bug, not bad input nor the database being unavailable), by where: ingest (webhooks) or api.",
		}, []string{"where"}),
		fingerprintMismatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_webhook_fingerprint_mismatches_total",
			Help: "Alerts received whose fingerprint, as the sender wrote it, differs from the one computed from their labels (relay uses the computed one), by route.",
		}, []string{"route"}),
		capped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_webhook_capped_total",
			Help: "Notifications that per_alert or split_status would have made into more messages for a conversation than ingest.max_messages_per_notification: the last message sent summarises the rest. By route.",
		}, []string{"route"}),
	}
	for _, w := range internalErrorWheres {
		m.internalErrors.WithLabelValues(w)
	}
	if reg != nil {
		reg.MustRegister(m.received, m.latency, m.duplicates, m.internalErrors, m.fingerprintMismatches, m.capped)
	}
	return m
}

// initRoutes pre-initialises the label sets of every configured route so
// dashboards see zeros rather than gaps.
func (m *metrics) initRoutes(routes map[string]*Route) {
	for name := range routes {
		for _, r := range webhookResults {
			m.received.WithLabelValues(name, r)
		}
		m.latency.WithLabelValues(name)
		m.duplicates.WithLabelValues(name)
		if r := routes[name]; r.Format == FormatAlertmanager || r.Format == "" {
			m.fingerprintMismatches.WithLabelValues(name)
			m.capped.WithLabelValues(name)
		}
	}
}
