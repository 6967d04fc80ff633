package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay"
)

// Ways a redelivery is asked for (Redelivery.Via).
const (
	ViaConsole = "console"
	ViaAPI     = "api"
	ViaCLI     = "cli"
)

// RedeliverRequest is who asks for a redelivery, and how.
type RedeliverRequest struct {
	// By is who asked: a console user's name, or "api-token".
	By string
	// Via is console, api or cli.
	Via string
	// Key is the client's Idempotency-Key ("" for none). A request with a
	// key used before for the same delivery changes nothing and gets the
	// first request's record back.
	Key string
	// Window: a request without a key within Window of the delivery's
	// previous redelivery is refused (relay.ErrConflict), so a double
	// click or a client's retry does not send twice.
	Window time.Duration
	Now    time.Time
}

// Redelivery is one redelivery of a delivery: when, who asked, through
// what, and the state the delivery left.
type Redelivery struct {
	RequestedAt   time.Time   `json:"requestedAt"`
	RequestedBy   string      `json:"requestedBy"`
	Via           string      `json:"via"`
	PreviousState relay.State `json:"previousState"`
	// Replayed: the request repeated an Idempotency-Key, and this is the
	// first request's record; nothing was queued this time.
	Replayed bool `json:"-"`
}

func (r Redelivery) String() string {
	return fmt.Sprintf("redelivered at %s by %s (%s)", r.RequestedAt.UTC().Format(time.RFC3339), r.RequestedBy, r.Via)
}

// Redeliver puts a finished delivery back in the queue as a new attempt (its
// history stays) and records who asked. It is relay.ErrNotFound for an
// unknown id, and relay.ErrConflict for a delivery still queued or, without
// a key, redelivered less than r.Window ago; the error names the earlier
// redelivery. The delivery's row is locked first, so concurrent requests
// for one delivery take turns and at most one of them queues it.
func (db *DB) Redeliver(ctx context.Context, operationID string, r RedeliverRequest) (Redelivery, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var out Redelivery
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var state relay.State
		err := tx.QueryRow(ctx, `SELECT state FROM deliveries WHERE operation_id = $1 FOR UPDATE`, operationID).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("delivery %q: %w", operationID, relay.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if r.Key != "" {
			err := tx.QueryRow(ctx, `SELECT requested_at, requested_by, via, previous_state FROM redeliveries
WHERE operation_id = $1 AND idempotency_key = $2`, operationID, r.Key).
				Scan(&out.RequestedAt, &out.RequestedBy, &out.Via, &out.PreviousState)
			if err == nil {
				out.Replayed = true
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		var last *Redelivery
		rows, _ := tx.Query(ctx, `SELECT requested_at, requested_by, via, previous_state FROM redeliveries
WHERE operation_id = $1 ORDER BY requested_at DESC, id DESC LIMIT 1`, operationID)
		prev, err := pgx.CollectRows(rows, scanRedelivery)
		if err != nil {
			return err
		}
		if len(prev) > 0 {
			last = &prev[0]
		}
		earlier := ""
		if last != nil {
			earlier = " (" + last.String() + ")"
		}
		if !state.Final() {
			return fmt.Errorf("delivery %q is %s, already queued%s: %w", operationID, state, earlier, relay.ErrConflict)
		}
		if r.Key == "" && last != nil && r.Now.Sub(last.RequestedAt) < r.Window {
			return fmt.Errorf("delivery %q was %s, less than %s ago; send an Idempotency-Key to redeliver it again now: %w",
				operationID, last.String(), r.Window, relay.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `
UPDATE deliveries SET state = 'pending', next_attempt_at = $2, queued_at = $2, updated_at = $2,
    seq = DEFAULT, lease_until = NULL, failures = 0, unconfirmed = 0, resend = false, superseded_by = NULL,
    last_error = 'redelivered (was ' || state || ')'
WHERE operation_id = $1`, operationID, r.Now); err != nil {
			return err
		}
		var key *string
		if r.Key != "" {
			key = &r.Key
		}
		out = Redelivery{RequestedAt: r.Now, RequestedBy: r.By, Via: r.Via, PreviousState: state}
		_, err = tx.Exec(ctx, `INSERT INTO redeliveries (operation_id, requested_at, requested_by, via, previous_state, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6)`, operationID, r.Now, clean(r.By), r.Via, string(state), key)
		return err
	})
	if err != nil {
		return Redelivery{}, classify("redeliver", err)
	}
	if !out.Replayed {
		db.signalEnqueued()
	}
	return out, nil
}

func scanRedelivery(row pgx.CollectableRow) (Redelivery, error) {
	var r Redelivery
	err := row.Scan(&r.RequestedAt, &r.RequestedBy, &r.Via, &r.PreviousState)
	return r, err
}

// redeliveriesOf lists a delivery's redeliveries, oldest first.
func redeliveriesOf(ctx context.Context, tx pgx.Tx, operationID string) ([]Redelivery, error) {
	rows, _ := tx.Query(ctx, `SELECT requested_at, requested_by, via, previous_state FROM redeliveries
WHERE operation_id = $1 ORDER BY requested_at, id`, operationID)
	return pgx.CollectRows(rows, scanRedelivery)
}
