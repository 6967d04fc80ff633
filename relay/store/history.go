package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// QueueStats describes the unfinished work and what failed lately, read
// from the queue's partial index and the final-state index only, so their
// cost does not grow with the history kept.
type QueueStats struct {
	Pending, Sending int64
	// OldestQueuedAt is the queued_at of the oldest unfinished delivery
	// (zero when the queue is empty).
	OldestQueuedAt time.Time
	// DeadRecent and UncertainRecent count the deliveries that ended dead
	// or uncertain since the time Stats was given.
	DeadRecent, UncertainRecent int64
}

// Stats reads QueueStats, counting failures that ended at or after since.
func (db *DB) Stats(ctx context.Context, since time.Time) (QueueStats, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var s QueueStats
	var oldest *time.Time
	err := db.pool.QueryRow(ctx, `
SELECT q.pending, q.sending, q.oldest,
       (SELECT count(*) FROM deliveries WHERE final_state = 'dead' AND updated_at >= $1),
       (SELECT count(*) FROM deliveries WHERE final_state = 'uncertain' AND updated_at >= $1)
FROM (SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
             count(*) FILTER (WHERE state = 'sending') AS sending, min(queued_at) AS oldest
      FROM deliveries WHERE final_state IS NULL) q`, since).Scan(&s.Pending, &s.Sending, &oldest, &s.DeadRecent, &s.UncertainRecent)
	if err != nil {
		return s, classify("read queue stats", err)
	}
	if oldest != nil {
		s.OldestQueuedAt = *oldest
	}
	return s, nil
}

// Swept counts the rows one sweep deleted, by table.
type Swept struct {
	Deliveries, Attempts, Notifications, Duplicates int64
}

// Add adds o to s.
func (s *Swept) Add(o Swept) {
	s.Deliveries += o.Deliveries
	s.Attempts += o.Attempts
	s.Notifications += o.Notifications
	s.Duplicates += o.Duplicates
}

// ErrSweepBusy means another replica is sweeping the history now.
var ErrSweepBusy = errors.New("another replica is sweeping the history")

// sweepLock is the advisory lock key a sweep holds for its whole run:
// one replica sweeps at a time.
const sweepLock = 0x72656c6179_0001 // "relay", 1

// SweepHistory deletes history recorded before cutoff, in batches of at
// most batch deliveries, each in a transaction of its own: finished
// deliveries (delivered, dead, uncertain, superseded) with their attempts,
// then the notifications none of whose deliveries is left, with the
// duplicates received for them. An unfinished delivery is never deleted,
// nor the notification it came from. pause is slept between batches, so
// the sweep leaves room for ingest; each is reported to batchDone. The
// sweep holds an advisory lock for its run and returns ErrSweepBusy at
// once when another replica holds it. It returns what it deleted, also
// when it stops on an error or when ctx ends.
func (db *DB) SweepHistory(ctx context.Context, cutoff time.Time, batch int, pause time.Duration, batchDone func(Swept)) (Swept, error) {
	var total Swept
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return total, classify("sweep history", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(sweepLock)).Scan(&locked); err != nil {
		return total, classify("sweep history: take the sweep lock", err)
	}
	if !locked {
		return total, ErrSweepBusy
	}
	defer func() {
		// A lock left behind (the connection broken) goes with its session.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), db.opts.OpTimeout)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(sweepLock)); err != nil {
			conn.Conn().Close(ctx) //nolint:errcheck // closing is how the lock is let go then
		}
	}()
	for {
		var got Swept
		err := func() error {
			ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
			defer cancel()
			return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				var err error
				got, err = sweepBatch(ctx, tx, cutoff, batch)
				return err
			})
		}()
		if err != nil {
			return total, classify("sweep history", err)
		}
		total.Add(got)
		if batchDone != nil {
			batchDone(got)
		}
		if got.Deliveries < int64(batch) {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// sweepBatch deletes one batch in tx. The notifications go in a second
// statement, which sees the first one's deletes.
func sweepBatch(ctx context.Context, tx pgx.Tx, cutoff time.Time, batch int) (Swept, error) {
	var s Swept
	var notifications []string
	err := tx.QueryRow(ctx, `
WITH d AS (
    SELECT operation_id FROM deliveries
    WHERE created_at < $1 AND final_state IS NOT NULL
    ORDER BY created_at DESC, operation_id DESC LIMIT $2
    FOR UPDATE SKIP LOCKED
), a AS (
    DELETE FROM attempts WHERE operation_id IN (SELECT operation_id FROM d) RETURNING 1
), dl AS (
    DELETE FROM deliveries WHERE operation_id IN (SELECT operation_id FROM d)
        AND final_state IS NOT NULL RETURNING notification_id
)
SELECT (SELECT count(*) FROM dl), (SELECT count(*) FROM a),
       coalesce((SELECT array_agg(DISTINCT notification_id) FROM dl), '{}')`,
		cutoff, batch).Scan(&s.Deliveries, &s.Attempts, &notifications)
	if err != nil {
		return s, fmt.Errorf("delete deliveries: %w", err)
	}
	if len(notifications) == 0 {
		return s, nil
	}
	err = tx.QueryRow(ctx, `
WITH n AS (
    SELECT id FROM notifications n WHERE id = ANY($1)
        AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id)
    FOR UPDATE
), du AS (
    DELETE FROM duplicates WHERE notification_id IN (SELECT id FROM n) RETURNING 1
), nd AS (
    DELETE FROM notifications WHERE id IN (SELECT id FROM n) RETURNING 1
)
SELECT (SELECT count(*) FROM nd), (SELECT count(*) FROM du)`, notifications).Scan(&s.Notifications, &s.Duplicates)
	if err != nil {
		return s, fmt.Errorf("delete notifications: %w", err)
	}
	return s, nil
}
