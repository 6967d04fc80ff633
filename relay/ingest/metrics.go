package ingest

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

type metrics struct {
	received   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	duplicates *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, db *store.DB) *metrics {
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
	}
	if reg != nil {
		reg.MustRegister(m.received, m.latency, m.duplicates, &stateCollector{db: db})
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
	}
}

// stateCollector reports deliveries by state from the database at scrape
// time, so every replica reports the same truth.
type stateCollector struct {
	db *store.DB
}

var deliveriesDesc = prometheus.NewDesc("relay_deliveries", "Deliveries in the database, by state.", []string{"state"}, nil)

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deliveriesDesc }

func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := s.db.CountByState(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(deliveriesDesc, err)
		return
	}
	for _, st := range relay.States {
		ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}
