package app

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t *testing.T, c *clock) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), relaytest.NewDatabase(t), store.Options{Now: c.now, OpTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func enqueue(t *testing.T, db *store.DB, key string, convs ...string) store.EnqueueResult {
	t.Helper()
	n := &store.NewNotification{Route: "prod", Format: "alertmanager", DedupKey: key, Window: time.Minute,
		Payload: []byte(`{"version":"4"}`)}
	for _, c := range convs {
		n.Messages = append(n.Messages, store.NewMessage{Conversation: c, Target: relay.Target{To: "sip:" + c + "@contoso.com"}, Text: "x"})
	}
	r, err := db.Enqueue(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func setState(t *testing.T, db *store.DB, at time.Time, state relay.State, ids ...string) {
	t.Helper()
	if _, err := db.Pool().Exec(context.Background(), `UPDATE deliveries SET state = $2, updated_at = $3 WHERE operation_id = ANY($1)`,
		ids, string(state), at); err != nil {
		t.Fatal(err)
	}
}

// TestSweeperFollowsTheRetentionAndCounts: the sweeper deletes what is
// older than the retention in force when it runs (a reload changes it),
// counts the rows by table, and records its success; with retention 0 it
// deletes nothing.
func TestSweeperFollowsTheRetentionAndCounts(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	db := openStore(t, c)
	old := enqueue(t, db, "old", "a", "b")
	setState(t, db, c.now(), relay.StateDelivered, old.OperationIDs...)
	c.advance(10 * 24 * time.Hour)
	newer := enqueue(t, db, "newer", "a")
	setState(t, db, c.now(), relay.StateDead, newer.OperationIDs...)
	c.advance(5 * 24 * time.Hour)

	retention := time.Duration(0)
	reg := prometheus.NewRegistry()
	s := newSweeper(db, slog.New(slog.DiscardHandler), c.now, func() time.Duration { return retention }, reg)
	s.sweep(context.Background())
	if got := testutil.ToFloat64(s.lastSuccess); got != 0 {
		t.Errorf("retention 0 swept (last success %v)", got)
	}
	retention = 30 * 24 * time.Hour
	s.sweep(context.Background())
	if got := testutil.ToFloat64(s.deleted.WithLabelValues("deliveries")); got != 0 {
		t.Errorf("30 days: %v deliveries deleted, want 0", got)
	}
	retention = 7 * 24 * time.Hour // as after a reload
	s.sweep(context.Background())
	want := `
# HELP relay_retention_deleted_rows_total Rows of history deleted because they were older than the retention, by table.
# TYPE relay_retention_deleted_rows_total counter
relay_retention_deleted_rows_total{table="attempts"} 0
relay_retention_deleted_rows_total{table="deliveries"} 2
relay_retention_deleted_rows_total{table="duplicates"} 0
relay_retention_deleted_rows_total{table="notifications"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "relay_retention_deleted_rows_total"); err != nil {
		t.Error(err)
	}
	if got, want := testutil.ToFloat64(s.lastSuccess), float64(c.now().Unix()); got != want {
		t.Errorf("last success = %v, want %v", got, want)
	}
	if _, err := db.GetDelivery(context.Background(), newer.OperationIDs[0]); err != nil {
		t.Errorf("the delivery inside the retention was deleted: %v", err)
	}
	if n := testutil.CollectAndCount(s.duration); n != 1 {
		t.Errorf("duration histogram has %d series", n)
	}
	if got := testutil.ToFloat64(s.failures); got != 0 {
		t.Errorf("%v failures", got)
	}
}

// TestQueueStatsServeTheLastRead: the figures come from the last read,
// the oldest age grows with the clock between reads, and before any read
// only the timestamp (0) is reported.
func TestQueueStatsServeTheLastRead(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	db := openStore(t, c)
	q := &queueStats{db: db, logger: slog.New(slog.DiscardHandler), now: c.now}
	reg := prometheus.NewRegistry()
	reg.MustRegister(q)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP relay_queue_stats_last_success_timestamp_seconds When the queue figures were last read from the database, in Unix seconds (0: not yet).
# TYPE relay_queue_stats_last_success_timestamp_seconds gauge
relay_queue_stats_last_success_timestamp_seconds 0
`)); err != nil {
		t.Error(err)
	}
	r := enqueue(t, db, "k", "a", "b", "c")
	setState(t, db, c.now(), relay.StateDead, r.OperationIDs[1])
	setState(t, db, c.now(), relay.StateSending, r.OperationIDs[2])
	c.advance(90 * time.Second)
	q.refresh(context.Background())
	c.advance(30 * time.Second)
	want := `
# HELP relay_deliveries_failed_last_hour Deliveries that ended dead or uncertain in the last hour, by state, read from the database every 15s.
# TYPE relay_deliveries_failed_last_hour gauge
relay_deliveries_failed_last_hour{state="dead"} 1
relay_deliveries_failed_last_hour{state="uncertain"} 0
# HELP relay_queue_depth Unfinished deliveries by state (pending, sending), read from the database every 15s.
# TYPE relay_queue_depth gauge
relay_queue_depth{state="pending"} 1
relay_queue_depth{state="sending"} 1
# HELP relay_queue_oldest_seconds Age of the oldest unfinished delivery (since it was queued), 0 when the queue is empty.
# TYPE relay_queue_oldest_seconds gauge
relay_queue_oldest_seconds 120
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "relay_queue_depth", "relay_queue_oldest_seconds", "relay_deliveries_failed_last_hour"); err != nil {
		t.Error(err)
	}
}
