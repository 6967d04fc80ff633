package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay/store"
)

// queueStats reads the queue's figures from the database in the
// background and serves the last ones read to scrapes, so a scrape never
// waits on the database and every replica reports the same truth. The
// queries read the unfinished rows and the recent failures only, so their
// cost does not grow with the history.
type queueStats struct {
	db     *store.DB
	logger *slog.Logger
	now    func() time.Time

	mu   sync.Mutex
	s    store.QueueStats
	at   time.Time // last success; zero before the first
	fail time.Time // last failure logged
}

// statsEvery is how often queueStats reads the database.
const statsEvery = 15 * time.Second

var (
	queueDepthDesc = prometheus.NewDesc("relay_queue_depth",
		"Unfinished deliveries by state (pending, sending), read from the database every 15s.", []string{"state"}, nil)
	queueOldestDesc = prometheus.NewDesc("relay_queue_oldest_seconds",
		"Age of the oldest unfinished delivery (since it was queued), 0 when the queue is empty.", nil, nil)
	failedRecentDesc = prometheus.NewDesc("relay_deliveries_failed_last_hour",
		"Deliveries that ended dead or uncertain in the last hour, by state, read from the database every 15s.", []string{"state"}, nil)
	statsSuccessDesc = prometheus.NewDesc("relay_queue_stats_last_success_timestamp_seconds",
		"When the queue figures were last read from the database, in Unix seconds (0: not yet).", nil, nil)
)

func (q *queueStats) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueOldestDesc
	ch <- failedRecentDesc
	ch <- statsSuccessDesc
}

func (q *queueStats) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	s, at := q.s, q.at
	q.mu.Unlock()
	if at.IsZero() {
		ch <- prometheus.MustNewConstMetric(statsSuccessDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(statsSuccessDesc, prometheus.GaugeValue, float64(at.UnixMilli())/1000)
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(s.Pending), "pending")
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(s.Sending), "sending")
	// The age grows between reads: a stalled queue shows at every scrape.
	oldest := 0.0
	if !s.OldestQueuedAt.IsZero() {
		oldest = max(q.now().Sub(s.OldestQueuedAt).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, oldest)
	ch <- prometheus.MustNewConstMetric(failedRecentDesc, prometheus.GaugeValue, float64(s.DeadRecent), "dead")
	ch <- prometheus.MustNewConstMetric(failedRecentDesc, prometheus.GaugeValue, float64(s.UncertainRecent), "uncertain")
}

// run reads the figures every statsEvery until ctx ends.
func (q *queueStats) run(ctx context.Context, ready <-chan struct{}) {
	select {
	case <-ctx.Done():
		return
	case <-ready:
	}
	t := time.NewTicker(statsEvery)
	defer t.Stop()
	for {
		q.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (q *queueStats) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := q.now()
	s, err := q.db.Stats(ctx, now.Add(-time.Hour))
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded) {
			if now.Sub(q.fail) >= 5*time.Minute {
				q.fail = now
				q.logger.WarnContext(ctx, "read queue figures for metrics", slog.Any("err", err))
			}
		}
		return
	}
	q.s, q.at = s, now
}

// sweeper deletes the history older than the configured retention, every
// sweepEvery, one replica at a time (the store holds an advisory lock for
// a sweep).
type sweeper struct {
	db        *store.DB
	logger    *slog.Logger
	now       func() time.Time
	retention func() time.Duration

	deleted     *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
	failures    prometheus.Counter
}

const (
	// sweepEvery is how often a replica tries to sweep.
	sweepEvery = 5 * time.Minute
	// sweepBatch deliveries go per transaction, and sweepPause between
	// two: short transactions, short locks, and room for ingest.
	sweepBatch = 500
	sweepPause = 20 * time.Millisecond
)

func newSweeper(db *store.DB, logger *slog.Logger, now func() time.Time, retention func() time.Duration, reg prometheus.Registerer) *sweeper {
	s := &sweeper{
		db: db, logger: logger, now: now, retention: retention,
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_retention_deleted_rows_total",
			Help: "Rows of history deleted because they were older than the retention, by table.",
		}, []string{"table"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_retention_sweep_duration_seconds",
			Help:    "Time one retention sweep took (this replica's sweeps only).",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900},
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_retention_last_success_timestamp_seconds",
			Help: "When this replica last finished a retention sweep, in Unix seconds (0: not yet; one replica sweeps at a time, so take the max across replicas).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_retention_sweep_failures_total",
			Help: "Retention sweeps that stopped on an error.",
		}),
	}
	for _, t := range []string{"deliveries", "attempts", "notifications", "duplicates"} {
		s.deleted.WithLabelValues(t)
	}
	if reg != nil {
		reg.MustRegister(s.deleted, s.duration, s.lastSuccess, s.failures)
	}
	return s
}

// run sweeps every sweepEvery until ctx ends, the first time one minute
// after ready (so a fleet restarting together does not start by sweeping).
func (s *sweeper) run(ctx context.Context, ready <-chan struct{}) {
	select {
	case <-ctx.Done():
		return
	case <-ready:
	}
	wait := time.Minute
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = sweepEvery
		s.sweep(ctx)
	}
}

// sweep runs one sweep, if retention is on.
func (s *sweeper) sweep(ctx context.Context) {
	keep := s.retention()
	if keep <= 0 {
		return
	}
	start := time.Now()
	cutoff := s.now().Add(-keep)
	total, err := s.db.SweepHistory(ctx, cutoff, sweepBatch, sweepPause, func(b store.Swept) {
		s.deleted.WithLabelValues("deliveries").Add(float64(b.Deliveries))
		s.deleted.WithLabelValues("attempts").Add(float64(b.Attempts))
		s.deleted.WithLabelValues("notifications").Add(float64(b.Notifications))
		s.deleted.WithLabelValues("duplicates").Add(float64(b.Duplicates))
	})
	took := time.Since(start)
	switch {
	case errors.Is(err, store.ErrSweepBusy):
		s.logger.DebugContext(ctx, "retention sweep skipped: another replica is sweeping")
		return
	case err != nil && ctx.Err() != nil:
		return // shutting down
	case err != nil:
		s.failures.Inc()
		s.logger.WarnContext(ctx, "retention sweep failed; it is tried again in 5m", slog.Any("err", err),
			slog.Int64("deliveries_deleted", total.Deliveries))
		return
	}
	s.duration.Observe(took.Seconds())
	s.lastSuccess.Set(float64(s.now().UnixMilli()) / 1000)
	if total.Deliveries > 0 || total.Notifications > 0 {
		s.logger.InfoContext(ctx, "retention sweep deleted expired history",
			slog.Time("before", cutoff), slog.Int64("deliveries", total.Deliveries), slog.Int64("attempts", total.Attempts),
			slog.Int64("notifications", total.Notifications), slog.Int64("duplicates", total.Duplicates),
			slog.Duration("took", took))
	}
}
