package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay"
)

// CreateConsoleSession records a console sign-in of user until expires,
// and forgets the sessions that have expired.
func (db *DB) CreateConsoleSession(ctx context.Context, id, user string, now, expires time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at < $1`, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO console_sessions (id, user_name, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			id, clean(user), now, expires)
		return err
	})
	return classify("create console session", err)
}

// ConsoleSession returns the user of a live console session, or
// relay.ErrNotFound when there is none (signed out, expired, unknown).
func (db *DB) ConsoleSession(ctx context.Context, id string, now time.Time) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var user string
	err := db.pool.QueryRow(ctx, `SELECT user_name FROM console_sessions WHERE id = $1 AND expires_at > $2`, id, now).Scan(&user)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("console session: %w", relay.ErrNotFound)
	}
	return user, classify("read console session", err)
}

// DeleteConsoleSession ends a console session (sign-out).
func (db *DB) DeleteConsoleSession(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	_, err := db.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id = $1`, id)
	return classify("delete console session", err)
}

// Overview is what the console's overview shows.
type Overview struct {
	// Queued counts the unfinished deliveries by state (pending, sending);
	// Recent the deliveries created since Since by the state they are in.
	Queued map[relay.State]int64
	Recent map[relay.State]int64
	Since  time.Time
	// Buckets are deliveries created per Step since Since, by state.
	Step    time.Duration
	Buckets []Bucket
	// Latency is queued-to-confirmed time of the deliveries confirmed
	// since Since, per LatencyStep.
	LatencyStep time.Duration
	Latency     []LatencyBucket
	// Session is who holds the UCWA session lease ("" when none has).
	Session SessionLease
	// Pool is the pool of the latest attempt that reached one, Since when
	// attempts started going to it, and Previous the pool before (a
	// failover), "" when the attempts looked at went to one pool only.
	Pool PoolUse
	// Attention lists the latest dead and uncertain deliveries.
	Attention []Delivery
}

// Bucket counts the deliveries created in [At, At+step) by state.
type Bucket struct {
	At     time.Time
	Counts map[relay.State]int64
}

// LatencyBucket is the queued-to-confirmed time of the deliveries
// confirmed in [At, At+step): median and 99th percentile, in seconds.
type LatencyBucket struct {
	At       time.Time
	N        int64
	P50, P99 float64
}

// SessionLease is the row saying which replica sends for the bot account.
type SessionLease struct {
	Account, Holder string
	Generation      int64
	AcquiredAt      time.Time
	ExpiresAt       time.Time
}

// PoolUse says which UCWA pool the attempts go to.
type PoolUse struct {
	Pool, Previous string
	// Since is the first attempt on Pool after the last one on Previous;
	// LastAt the latest attempt on Pool.
	Since, LastAt time.Time
}

// poolLookback bounds how many attempts the overview reads to find the
// last failover, so its cost does not grow with the history.
const poolLookback = 100_000

// attentionMax is how many dead and uncertain deliveries the overview lists.
const attentionMax = 10

// Overview reads the console's overview for the day before now: every
// statement reads the newest-first index from since on, the queue's
// partial index, or the final-state index, so its cost grows with a day's
// traffic, not with the history kept.
func (db *DB) Overview(ctx context.Context, now time.Time) (*Overview, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	o := &Overview{Queued: map[relay.State]int64{}, Recent: map[relay.State]int64{}, Since: now.Add(-24 * time.Hour).Truncate(5 * time.Minute),
		Step: 5 * time.Minute, LatencyStep: time.Hour}
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT state, count(*) FROM deliveries WHERE final_state IS NULL GROUP BY state`)
		if err := collectCounts(rows, o.Queued); err != nil {
			return fmt.Errorf("queued: %w", err)
		}
		byAt := map[time.Time]map[relay.State]int64{}
		rows, _ = tx.Query(ctx, `
SELECT date_bin($2, created_at, $1), state, count(*) FROM deliveries
WHERE created_at >= $1 GROUP BY 1, 2 ORDER BY 1`, o.Since, o.Step)
		var at time.Time
		var st relay.State
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&at, &st, &n}, func() error {
			if byAt[at] == nil {
				byAt[at] = map[relay.State]int64{}
			}
			byAt[at][st] += n
			o.Recent[st] += n
			return nil
		}); err != nil {
			return fmt.Errorf("per %s: %w", o.Step, err)
		}
		for t := o.Since; t.Before(now); t = t.Add(o.Step) {
			o.Buckets = append(o.Buckets, Bucket{At: t, Counts: byAt[t]})
		}
		rows, _ = tx.Query(ctx, `
SELECT date_bin($2, created_at, $1), count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - queued_at)),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - queued_at))
FROM deliveries WHERE created_at >= $1 AND delivered_at IS NOT NULL AND state = 'delivered'
GROUP BY 1 ORDER BY 1`, o.Since, o.LatencyStep)
		lat := map[time.Time]LatencyBucket{}
		var b LatencyBucket
		if _, err := pgx.ForEachRow(rows, []any{&b.At, &b.N, &b.P50, &b.P99}, func() error {
			lat[b.At] = b
			return nil
		}); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		for t := o.Since; t.Before(now); t = t.Add(o.LatencyStep) {
			lb := lat[t]
			lb.At = t
			o.Latency = append(o.Latency, lb)
		}
		err := tx.QueryRow(ctx, `SELECT account, holder, generation, acquired_at, expires_at FROM sessions
ORDER BY expires_at DESC LIMIT 1`).Scan(&o.Session.Account, &o.Session.Holder, &o.Session.Generation,
			&o.Session.AcquiredAt, &o.Session.ExpiresAt)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("session lease: %w", err)
		}
		if err := poolUse(ctx, tx, &o.Pool); err != nil {
			return fmt.Errorf("pool: %w", err)
		}
		rows, _ = tx.Query(ctx, `
(SELECT `+deliveryColumns+` FROM deliveries WHERE final_state = 'dead' ORDER BY created_at DESC, operation_id DESC LIMIT $1)
UNION ALL
(SELECT `+deliveryColumns+` FROM deliveries WHERE final_state = 'uncertain' ORDER BY created_at DESC, operation_id DESC LIMIT $1)
ORDER BY created_at DESC, operation_id DESC LIMIT $1`, attentionMax)
		o.Attention, err = pgx.CollectRows(rows, scanDelivery)
		return err
	})
	if err != nil {
		return nil, classify("read overview", err)
	}
	return o, nil
}

func collectCounts(rows pgx.Rows, into map[relay.State]int64) error {
	var st relay.State
	var n int64
	_, err := pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		into[st] = n
		return nil
	})
	return err
}

// poolUse finds the pool of the latest attempt and when the attempts
// moved to it, among the latest poolLookback attempts.
func poolUse(ctx context.Context, tx pgx.Tx, p *PoolUse) error {
	var last int64
	err := tx.QueryRow(ctx, `SELECT id, pool, finished_at FROM attempts WHERE pool <> '' ORDER BY id DESC LIMIT 1`).
		Scan(&last, &p.Pool, &p.LastAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var before int64
	err = tx.QueryRow(ctx, `SELECT id, pool FROM attempts WHERE id > $1::bigint - $2::bigint AND id < $1 AND pool <> '' AND pool <> $3
ORDER BY id DESC LIMIT 1`, last, poolLookback, p.Pool).Scan(&before, &p.Previous)
	if errors.Is(err, pgx.ErrNoRows) {
		err = tx.QueryRow(ctx, `SELECT started_at FROM attempts WHERE id > $1::bigint - $2::bigint AND pool = $3 ORDER BY id LIMIT 1`,
			last, poolLookback, p.Pool).Scan(&p.Since)
		return err
	}
	if err != nil {
		return err
	}
	return tx.QueryRow(ctx, `SELECT started_at FROM attempts WHERE id > $1 AND pool = $2 ORDER BY id LIMIT 1`, before, p.Pool).Scan(&p.Since)
}

// NotificationDeliveries lists the deliveries made from one notification.
func (db *DB) NotificationDeliveries(ctx context.Context, notificationID string) ([]Delivery, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	rows, _ := db.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE notification_id = $1
ORDER BY operation_id`, notificationID)
	list, err := pgx.CollectRows(rows, scanDelivery)
	return list, classify("list a notification's deliveries", err)
}

// StoredNotification is a notification as received, for the template
// preview.
type StoredNotification struct {
	ID, Route, Format, Event string
	Body                     []byte
	ReceivedAt               time.Time
	// Summary is the first line of its first delivery's text.
	Summary string
}

// RecentNotifications lists the latest notifications received on route
// (without their bodies), newest first, through the route's index of
// deliveries.
func (db *DB) RecentNotifications(ctx context.Context, route string, n int) ([]StoredNotification, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	rows, _ := db.pool.Query(ctx, `
SELECT DISTINCT ON (created_at, notification_id) notification_id, created_at, split_part(text, E'\n', 1)
FROM (SELECT notification_id, created_at, text FROM deliveries WHERE route = $1
      ORDER BY created_at DESC, operation_id DESC LIMIT $2 * 20) d
ORDER BY created_at DESC, notification_id LIMIT $2`, route, n)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredNotification, error) {
		s := StoredNotification{Route: route}
		err := row.Scan(&s.ID, &s.ReceivedAt, &s.Summary)
		return s, err
	})
	return list, classify("list recent notifications", err)
}

// Notification returns one notification with its body as received, or
// relay.ErrNotFound.
func (db *DB) Notification(ctx context.Context, id string) (*StoredNotification, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	s := &StoredNotification{ID: id}
	err := db.pool.QueryRow(ctx, `SELECT route, format, event, coalesce(body, convert_to(payload::text, 'UTF8')), received_at
FROM notifications WHERE id = $1`, id).Scan(&s.Route, &s.Format, &s.Event, &s.Body, &s.ReceivedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("notification %q: %w", id, relay.ErrNotFound)
	}
	if err != nil {
		return nil, classify("read notification", err)
	}
	return s, nil
}
