package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

type metrics struct {
	received       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	duplicates     *prometheus.CounterVec
	internalErrors *prometheus.CounterVec
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
		internalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_internal_errors_total",
			Help: "Requests answered 500 because relay itself failed (a bug, not bad input nor the database being unavailable), by where: ingest (webhooks) or api.",
		}, []string{"where"}),
	}
	for _, w := range internalErrorWheres {
		m.internalErrors.WithLabelValues(w)
	}
	if reg != nil {
		reg.MustRegister(m.received, m.latency, m.duplicates, m.internalErrors, &stateCollector{db: db})
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

// stateCollector reports deliveries by state from the database, so every
// replica reports the same truth. The count runs at most once per
// stateRefresh whatever the scrape rate (scrapes need no token, and the
// table keeps all history); in between, scrapes get the last counts.
type stateCollector struct {
	db *store.DB

	refreshing sync.Mutex // held by the one scrape that refreshes

	mu     sync.Mutex // guards what follows
	at     time.Time
	counts map[relay.State]int64
	err    error
}

const stateRefresh = 15 * time.Second

var deliveriesDesc = prometheus.NewDesc("relay_deliveries", "Deliveries in the database, by state.", []string{"state"}, nil)

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deliveriesDesc }

func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	stale := time.Since(s.at) >= stateRefresh
	s.mu.Unlock()
	// One scrape refreshes; one arriving meanwhile serves what is cached.
	if stale && s.refreshing.TryLock() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		counts, err := s.db.CountByState(ctx)
		cancel()
		s.mu.Lock()
		s.at, s.err = time.Now(), err
		if err == nil {
			s.counts = counts
		}
		s.mu.Unlock()
		s.refreshing.Unlock()
	}
	s.mu.Lock()
	counts, err := s.counts, s.err
	s.mu.Unlock()
	if counts == nil {
		if err == nil {
			err = errors.New("deliveries not counted yet")
		}
		ch <- prometheus.NewInvalidMetric(deliveriesDesc, err)
		return
	}
	for _, st := range relay.States {
		ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}
