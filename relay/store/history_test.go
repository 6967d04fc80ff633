package store_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
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

// TestClaimAndRetryWriteNoIndex: no index of deliveries (key, expression
// or predicate) mentions a column that claiming a delivery (pending to
// sending) or giving it a retry (sending to pending) writes, and
// final_state, which the indexes use instead of state, stays NULL through
// both. So PostgreSQL can update those rows in place (HOT) without
// touching an index whenever the page has room (the table's fillfactor
// leaves some); only the final outcome writes the indexes.
func TestClaimAndRetryWriteNoIndex(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// What the claim, claim-next, finish (to pending) and release
	// statements set.
	written := []string{"state", "attempts", "lease_until", "claim_gen", "claim_token", "updated_at",
		"unconfirmed", "resend", "next_attempt_at", "failures", "last_error", "delivered_at", "alone"}
	rows, err := b.db.Pool().Query(ctx, `SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)
FROM pg_index WHERE indrelid = 'deliveries'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		defs[name] = def
	}
	if rows.Err() != nil || len(defs) < 5 {
		t.Fatalf("read %d index definitions: %v", len(defs), rows.Err())
	}
	for name, def := range defs {
		for _, col := range written {
			if regexp.MustCompile(`\b` + col + `\b`).MatchString(def) {
				t.Errorf("index %s mentions %s, which a claim or retry writes: %s", name, col, def)
			}
		}
	}
	var fillfactor string
	if err := b.db.Pool().QueryRow(ctx, `SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'deliveries'::regclass`).Scan(&fillfactor); err != nil || !strings.Contains(fillfactor, "fillfactor=") {
		t.Errorf("deliveries options %q (%v): want a fillfactor leaving room for in-place updates", fillfactor, err)
	}

	enqueue(t, b, "hot", "g", "firing", "a")
	finalState := func() *string {
		var fs *string
		if err := b.db.Pool().QueryRow(ctx, `SELECT final_state FROM deliveries`).Scan(&fs); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	for _, st := range []relay.State{relay.StatePending, relay.StateDelivered} {
		c, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 1})
		if err != nil || len(c) != 1 {
			t.Fatalf("Claim = %v, %v", c, err)
		}
		if fs := finalState(); fs != nil {
			t.Errorf("claimed: final_state %q, want NULL", *fs)
		}
		res, err := b.db.Finish(ctx, store.Finish{OperationID: c[0].OperationID, Attempt: c[0].Attempt, Gen: 1, State: st,
			NextAttemptAt: *b.now, Now: *b.now, QueuedAt: c[0].QueuedAt})
		if err != nil || !res.Recorded {
			t.Fatalf("Finish(%s) = %+v, %v", st, res, err)
		}
	}
	if fs := finalState(); fs == nil || *fs != "delivered" {
		t.Errorf("delivered: final_state %v, want delivered", fs)
	}
}
