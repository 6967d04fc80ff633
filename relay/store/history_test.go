package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// count returns how many rows of table match where.
func count(t *testing.T, b testBundle, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := b.db.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// finish sets the state of a delivery directly, with one attempt recorded.
func finish(t *testing.T, b testBundle, opID string, state relay.State) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.db.Pool().Exec(ctx, `UPDATE deliveries SET state = $2, attempts = 1 WHERE operation_id = $1`, opID, string(state)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Pool().Exec(ctx, `INSERT INTO attempts (operation_id, attempt, ucwa_operation_id, outcome, started_at, finished_at)
VALUES ($1, 1, $1, 'sent', now(), now())`, opID); err != nil {
		t.Fatal(err)
	}
}

// TestSweepHistoryKeepsUnfinishedWork: a sweep deletes the finished
// deliveries recorded before the cutoff with their attempts, and the
// notifications none of whose deliveries is left with their duplicates;
// it never deletes an unfinished delivery, nor the notification it came
// from, nor anything recorded after the cutoff. It works in batches and
// says what it deleted, table by table.
func TestSweepHistoryKeepsUnfinishedWork(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	// Recorded long ago: a notification to two conversations, both sent,
	// with a duplicate; one with a delivery sent and one still pending;
	// one dead, one superseded, one still sending.
	old, err := b.db.Enqueue(ctx, notification("old-done", "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if dup, err := b.db.Enqueue(ctx, notification("old-done", "a", "b")); err != nil || !dup.Duplicate {
		t.Fatalf("duplicate: %+v, %v", dup, err)
	}
	half, _ := b.db.Enqueue(ctx, notification("old-half", "a", "b"))
	dead, _ := b.db.Enqueue(ctx, notification("old-dead", "c"))
	sup, _ := b.db.Enqueue(ctx, notification("old-superseded", "d"))
	sending, _ := b.db.Enqueue(ctx, notification("old-sending", "e"))
	for _, id := range old.OperationIDs {
		finish(t, b, id, relay.StateDelivered)
	}
	finish(t, b, half.OperationIDs[0], relay.StateDelivered)
	finish(t, b, dead.OperationIDs[0], relay.StateDead)
	finish(t, b, sup.OperationIDs[0], relay.StateSuperseded)
	finish(t, b, sending.OperationIDs[0], relay.StateSending)

	// Recorded after the cutoff: kept although finished.
	b.advance(48 * time.Hour)
	recent, _ := b.db.Enqueue(ctx, notification("recent", "a"))
	finish(t, b, recent.OperationIDs[0], relay.StateDelivered)

	var batches []store.Swept
	got, err := b.db.SweepHistory(ctx, b.now.Add(-24*time.Hour), 2, 0, func(s store.Swept) { batches = append(batches, s) })
	if err != nil {
		t.Fatalf("SweepHistory: %v", err)
	}
	want := store.Swept{Deliveries: 5, Attempts: 5, Notifications: 3, Duplicates: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("swept (-want +got):\n%s", diff)
	}
	if len(batches) != 3 {
		t.Errorf("%d batches of at most 2 deliveries, want 3: %+v", len(batches), batches)
	}
	for _, id := range []string{half.OperationIDs[1], sending.OperationIDs[0], recent.OperationIDs[0]} {
		if _, err := b.db.GetDelivery(ctx, id); err != nil {
			t.Errorf("delivery %s was deleted: %v", id, err)
		}
	}
	for _, id := range []string{old.OperationIDs[0], old.OperationIDs[1], half.OperationIDs[0], dead.OperationIDs[0], sup.OperationIDs[0]} {
		if _, err := b.db.GetDelivery(ctx, id); !errors.Is(err, relay.ErrNotFound) {
			t.Errorf("delivery %s kept: %v", id, err)
		}
	}
	if n := count(t, b, "notifications", "id = ANY($1)", []string{half.NotificationID, sending.NotificationID, recent.NotificationID}); n != 3 {
		t.Errorf("%d of the 3 notifications with deliveries left are kept", n)
	}
	if n := count(t, b, "notifications", "true"); n != 3 {
		t.Errorf("%d notifications left, want 3", n)
	}
	if n := count(t, b, "attempts", "true"); n != 2 {
		t.Errorf("%d attempts left, want 2 (sending and recent)", n)
	}

	// Once the pending one is sent, the next sweep takes it and its
	// notification.
	finish(t, b, half.OperationIDs[1], relay.StateDelivered)
	got, err = b.db.SweepHistory(ctx, b.now.Add(-24*time.Hour), 100, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Swept{Deliveries: 1, Attempts: 1, Notifications: 1}); got != want {
		t.Errorf("second sweep: %+v, want %+v", got, want)
	}
}

// TestSweepHistoryOneReplicaAtATime: while one sweep holds the lock,
// another returns ErrSweepBusy at once and deletes nothing.
func TestSweepHistoryOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	r, _ := b.db.Enqueue(ctx, notification("x", "a"))
	finish(t, b, r.OperationIDs[0], relay.StateDelivered)
	b.advance(48 * time.Hour)

	conn, err := b.db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var key int64
	// The key the store uses: taken here as another replica would.
	if err := conn.QueryRow(ctx, `SELECT x'72656c61790001'::bigint`).Scan(&key); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.SweepHistory(ctx, b.now.Add(-time.Hour), 10, 0, nil); !errors.Is(err, store.ErrSweepBusy) {
		t.Fatalf("SweepHistory with the lock held elsewhere = %v, want ErrSweepBusy", err)
	}
	if n := count(t, b, "deliveries", "true"); n != 1 {
		t.Errorf("%d deliveries left, want 1", n)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
		t.Fatal(err)
	}
	got, err := b.db.SweepHistory(ctx, b.now.Add(-time.Hour), 10, 0, nil)
	if err != nil || got.Deliveries != 1 {
		t.Errorf("SweepHistory after the lock was let go = %+v, %v", got, err)
	}
}

// TestStatsReadsTheQueue: queue depth by state, the oldest queued
// delivery, and the deliveries that ended dead or uncertain since a time.
func TestStatsReadsTheQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s, err := b.db.Stats(ctx, b.now.Add(-time.Hour))
	if err != nil || s != (store.QueueStats{}) {
		t.Fatalf("empty: %+v, %v", s, err)
	}
	first := *b.now
	r1, _ := b.db.Enqueue(ctx, notification("1", "a", "b", "c", "d"))
	b.advance(time.Minute)
	_, _ = b.db.Enqueue(ctx, notification("2", "a"))
	finish(t, b, r1.OperationIDs[0], relay.StateSending)
	finish(t, b, r1.OperationIDs[1], relay.StateDead)
	finish(t, b, r1.OperationIDs[2], relay.StateUncertain)
	finish(t, b, r1.OperationIDs[3], relay.StateDelivered)
	if _, err := b.db.Pool().Exec(ctx, `UPDATE deliveries SET updated_at = $1 WHERE final_state IS NOT NULL`, *b.now); err != nil {
		t.Fatal(err)
	}
	s, err = b.db.Stats(ctx, b.now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := store.QueueStats{Pending: 1, Sending: 1, OldestQueuedAt: first, DeadRecent: 1, UncertainRecent: 1}
	if !s.OldestQueuedAt.Equal(want.OldestQueuedAt) {
		t.Errorf("oldest = %v, want %v", s.OldestQueuedAt, first)
	}
	s.OldestQueuedAt = want.OldestQueuedAt
	if s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
	if s, _ := b.db.Stats(ctx, b.now.Add(time.Minute)); s.DeadRecent != 0 || s.UncertainRecent != 0 {
		t.Errorf("failures since later = %d dead, %d uncertain, want none", s.DeadRecent, s.UncertainRecent)
	}
}
