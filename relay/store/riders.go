package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Rider is a delivery queued behind a claimed one for the same recipient,
// offered to ClaimRiders' take: it may ride in the claimed delivery's
// message (coalescing).
type Rider struct {
	Claimed
	// Due: pending and due now, or being sent under a claim that may be
	// taken over (its lease ran out, or it belongs to an older session
	// generation and the claim may take over: Reclaimed is then set, and
	// the counts are the ones the claim writes, as for a head). A rider
	// that is not due (being sent under a current claim, or waiting for a
	// retry) ends the run.
	Due bool
}

// RiderClaim is how ClaimRiders claims.
type RiderClaim struct {
	Now   time.Time
	Lease time.Duration
	// Token marks the riders' claim, so that it can be given back
	// (ReleaseClaims) when its answer is lost.
	Token string
	// Page is how many rows are read at a time (default 64).
	Page int
	// Takeover as in ClaimOptions: riders being sent under an older
	// session generation may be taken over.
	Takeover bool
}

// ridersSQL reads the next page of the recipient's line after seq, locked
// in queue order. The line is found as claimNextSQL finds its head: the
// row comparison leaves the queue index as the only plan that yields rows
// in order, whatever the statistics. Its rows are then read by primary key
// from an array, which no plan can turn into a scan of the whole queue (a
// semi-join could, and a generic plan did).
const ridersSQL = `
WITH line AS (
    SELECT operation_id FROM (
        SELECT operation_id, recipient FROM deliveries
        WHERE (recipient, seq) > ($1::text, $2::bigint) AND final_state IS NULL
        ORDER BY recipient, seq LIMIT $3) next
    WHERE next.recipient = $1
)
SELECT d.operation_id, d.seq, d.route, d.conversation, d.recipient, d.subject, d.importance,
    d.group_key, d.status, d.part, d.parts, d.text, d.attempts, d.failures, d.unconfirmed, d.resend, d.alone,
    d.status = 'firing' AND d.group_key <> '' AND EXISTS (
        SELECT 1 FROM deliveries r
        WHERE r.recipient = d.recipient AND r.group_key = d.group_key AND r.seq > d.seq
          AND r.route = d.route AND r.conversation = d.conversation
          AND r.final_state IS NULL AND r.state = 'pending' AND r.status = 'resolved'),
    (d.state = 'pending' AND d.next_attempt_at <= $4)
       OR (d.state = 'sending' AND (d.lease_until < $4 OR (d.claim_gen < $5 AND $6))),
    d.state = 'sending',
    d.created_at, d.queued_at
FROM deliveries d
WHERE d.operation_id = ANY (ARRAY(SELECT operation_id FROM line)) AND d.final_state IS NULL
ORDER BY d.seq
FOR UPDATE OF d`

// heldSQL locks the head of a coalesced send if its claim is still current.
const heldSQL = `
SELECT true FROM deliveries WHERE operation_id = $1 AND state = 'sending' AND attempts = $2 AND claim_gen = $3
FOR UPDATE`

// claimRidersSQL claims the riders taken, under the lock ridersSQL holds.
// One taken over from a claim that stopped mid-send counts as an
// unconfirmed send and is marked for resending, as a reclaimed head is.
const claimRidersSQL = `
UPDATE deliveries SET state = 'sending', attempts = attempts + 1,
    lease_until = $2::timestamptz + $3::bigint * interval '1 millisecond', claim_gen = $4, claim_token = $5, updated_at = $2,
    unconfirmed = unconfirmed + CASE WHEN state = 'sending' THEN 1 ELSE 0 END,
    resend = resend OR state = 'sending'
WHERE operation_id = ANY($1) AND final_state IS NULL
  AND (state = 'pending' OR (state = 'sending' AND (lease_until < $2 OR (claim_gen < $4 AND $6))))`

// ClaimRiders claims, for the delivery head that this worker has claimed,
// the deliveries queued right behind it for the same recipient that take
// accepts, in queue order: take sees each due one in turn, and the run
// ends at the first that is not due or that take refuses, so the riders
// are always the head's immediate followers and the recipient's order
// holds. When head's claim is no longer current, nothing is claimed. Nothing else claims them
// meanwhile: claims take only the head of a recipient's line, which the
// caller holds. The riders come back claimed as sending under head's
// session generation, each with its new attempt number.
func (db *DB) ClaimRiders(ctx context.Context, head Claimed, o RiderClaim, take func(Rider) bool) ([]Claimed, error) {
	if o.Page <= 0 {
		o.Page = 64
	}
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var riders []Claimed
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		riders = nil
		// The head must still be this claim's, locked until the riders are
		// claimed: after a takeover, riders claimed under the old session
		// generation would be taken over in turn and counted, and marked,
		// as sent.
		var held bool
		err := tx.QueryRow(ctx, heldSQL, head.OperationID, head.Attempt, head.Gen).Scan(&held)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock the head: %w", err)
		}
		after := head.Seq
		for {
			rows, _ := tx.Query(ctx, ridersSQL, head.Target.To, after, o.Page, o.Now, head.Gen, o.Takeover)
			page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Rider, error) {
				r := Rider{Claimed: Claimed{Gen: head.Gen}}
				err := row.Scan(&r.OperationID, &r.Seq, &r.Route, &r.Conversation, &r.Target.To, &r.Target.Subject,
					&r.Target.Importance, &r.GroupKey, &r.Status, &r.Part, &r.Parts, &r.Text, &r.Attempt, &r.Failures,
					&r.Unconfirmed, &r.Resend, &r.Alone, &r.Supersedable, &r.Due, &r.Reclaimed, &r.CreatedAt, &r.QueuedAt)
				if r.Reclaimed { // the counts the claim writes
					r.Unconfirmed++
					r.Resend = true
				}
				return r, err
			})
			if err != nil {
				return fmt.Errorf("read riders: %w", err)
			}
			stopped := len(page) < o.Page
			for _, r := range page {
				if !r.Due || !take(r) {
					stopped = true
					break
				}
				r.Attempt++
				riders = append(riders, r.Claimed)
				after = r.Seq
			}
			if stopped {
				break
			}
		}
		if len(riders) == 0 {
			return nil
		}
		ids := make([]string, len(riders))
		for i, r := range riders {
			ids[i] = r.OperationID
		}
		tag, err := tx.Exec(ctx, claimRidersSQL, ids, o.Now, o.Lease.Milliseconds(), head.Gen, o.Token, o.Takeover)
		if err != nil {
			return fmt.Errorf("claim riders: %w", err)
		}
		if n := tag.RowsAffected(); n != int64(len(riders)) {
			// The rows are locked and were due: this cannot happen
			// short of a bug; claiming nothing keeps the order.
			return fmt.Errorf("claim riders: %d of %d claimed", n, len(riders))
		}
		return nil
	})
	if err != nil {
		return nil, classify("claim riders", err)
	}
	return riders, nil
}
