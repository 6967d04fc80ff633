package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// AcquireLease takes (fresh) or renews account's session lease for holder,
// valid for ttl by the database's clock. The session lease is the row that
// makes one replica the sender for a bot account; "session" alone means
// the UCWA application session in relay's code. It returns the
// lease's generation and true when holder holds it now; false (and no
// error) while another holder's lease is live. Every fresh acquisition
// raises the generation, even by the same holder after losing the lease,
// so rows claimed under an older generation can be taken over at once; a
// renewal keeps it.
func (db *DB) AcquireLease(ctx context.Context, account, holder string, ttl time.Duration, fresh bool) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var gen int64
	err := db.pool.QueryRow(ctx, `
INSERT INTO sessions AS s (account, holder, generation, acquired_at, expires_at)
VALUES ($1, $2, 1, now(), now() + $3 * interval '1 millisecond')
ON CONFLICT (account) DO UPDATE SET
    generation  = s.generation + CASE WHEN s.holder = excluded.holder AND NOT $4 THEN 0 ELSE 1 END,
    acquired_at = CASE WHEN s.holder = excluded.holder AND NOT $4 THEN s.acquired_at ELSE now() END,
    holder      = excluded.holder,
    expires_at  = excluded.expires_at
WHERE s.holder = excluded.holder OR s.expires_at < now()
RETURNING generation`, account, holder, ttl.Milliseconds(), fresh).Scan(&gen)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify("acquire session lease", err)
	}
	return gen, true, nil
}

// ReleaseLease ends holder's lease on account at once, so another replica
// can take over without waiting for it to expire.
func (db *DB) ReleaseLease(ctx context.Context, account, holder string) error {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	_, err := db.pool.Exec(ctx, `UPDATE sessions SET expires_at = now() - interval '1 millisecond'
WHERE account = $1 AND holder = $2`, account, holder)
	return classify("release session lease", err)
}

// LeaseHolder returns who holds account's session lease and until when.
func (db *DB) LeaseHolder(ctx context.Context, account string) (holder string, gen int64, expires time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	err = db.pool.QueryRow(ctx, `SELECT holder, generation, expires_at FROM sessions WHERE account = $1`, account).
		Scan(&holder, &gen, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, time.Time{}, nil
	}
	return holder, gen, expires, classify("read session lease", err)
}

// LeaseHeldElsewhere reports whether a replica other than holder holds a
// live session lease, i.e. whether new deliveries committed here must be
// announced for that replica's worker.
func (db *DB) LeaseHeldElsewhere(ctx context.Context, holder string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var held bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE expires_at > now() AND holder <> $1)`,
		holder).Scan(&held)
	return held, classify("read session leases", err)
}
