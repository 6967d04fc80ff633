package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay"
)

// Claimed is a delivery a worker has taken to send.
type Claimed struct {
	OperationID  string
	Seq          int64
	Route        string
	Conversation string
	Target       relay.Target
	GroupKey     string
	Status       string
	Part, Parts  int
	Text         string
	// Attempt is this try's number (1 for the first).
	Attempt int
	// Failures counts the tries that failed for the message's own sake.
	Failures int
	// Unconfirmed counts the sends that may have reached the recipient
	// without the server confirming them, this claim's reclaim included.
	Unconfirmed int
	Resend      bool
	// Reclaimed: the delivery was being sent by a worker that stopped
	// (crashed, or lost the session) before recording the outcome. The
	// recipient may have it already.
	Reclaimed bool
	// Supersedable: a resolved delivery of the same alert group is queued
	// after this firing one (see Supersede).
	Supersedable bool
	// Alone: the delivery goes out in a message of its own (a message that
	// carried it was refused).
	Alone bool
	// Behind counts the recipient's unfinished deliveries queued after
	// this one, up to the claim's Lookahead: what decides whether a send
	// carries others (coalescing).
	Behind    int
	Gen       int64
	CreatedAt time.Time
	QueuedAt  time.Time
}

// claimSQL takes the head of each recipient's line (its lowest seq among
// unfinished deliveries) when that head is due: pending and due, or sending
// under a lease that expired or belongs to an older session generation. A
// recipient whose head is being sent is skipped, so each recipient has at
// most one delivery in flight and its deliveries go out in order. The heads
// are found with a loose index scan (one probe per recipient), so the cost
// grows with the number of recipients, not with the backlog.
const claimSQL = `
WITH RECURSIVE heads AS (
    (SELECT recipient, seq FROM deliveries
     WHERE final_state IS NULL ORDER BY recipient, seq LIMIT 1)
    UNION ALL
    SELECT nx.recipient, nx.seq FROM heads h, LATERAL (
        SELECT recipient, seq FROM deliveries
        WHERE final_state IS NULL AND recipient > h.recipient
        ORDER BY recipient, seq LIMIT 1) nx
), due AS (
    SELECT d.operation_id, d.state AS old_state, false AS mine FROM deliveries d JOIN heads h ON d.seq = h.seq
    WHERE (d.state = 'pending' AND d.next_attempt_at <= $1)
       OR (d.state = 'sending' AND (d.lease_until < $1 OR (d.claim_gen < $4 AND $6)))
    ORDER BY d.next_attempt_at, d.seq
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d
SET state = 'sending', attempts = d.attempts + 1, lease_until = $1 + $3 * interval '1 millisecond',
    claim_gen = $4, claim_token = $5, updated_at = $1, ` + reclaimCounts + `
FROM due WHERE d.operation_id = due.operation_id
RETURNING ` + claimedColumns

// reclaimCounts counts a claim taken over from a worker that stopped
// mid-send as an unconfirmed send, marked for resending, in the claim
// itself: a claim given back later (Release) keeps the count.
const reclaimCounts = `
    unconfirmed = d.unconfirmed + CASE WHEN due.old_state = 'sending' AND NOT due.mine THEN 1 ELSE 0 END,
    resend = d.resend OR (due.old_state = 'sending' AND NOT due.mine)`

// claimedColumns are what a claim returns; old_state is the state before it.
const claimedColumns = `d.operation_id, d.seq, d.route, d.conversation, d.recipient, d.subject, d.importance,
    d.group_key, d.status, d.part, d.parts, d.text, d.attempts, d.failures, d.unconfirmed, d.resend, d.alone,
    due.old_state = 'sending' AND NOT due.mine,
    d.status = 'firing' AND d.group_key <> '' AND EXISTS (
        SELECT 1 FROM deliveries r
        WHERE r.recipient = d.recipient AND r.group_key = d.group_key AND r.seq > d.seq
          AND r.route = d.route AND r.conversation = d.conversation
          AND r.final_state IS NULL AND r.state = 'pending' AND r.status = 'resolved'),
    ` + behindColumn + `,
    d.created_at, d.queued_at`

// behindColumn counts the deliveries queued behind d for its recipient, up
// to $7 (the lookahead: no more rows are read, so a claim in a backlog
// costs a few index entries, not the backlog). The row comparison keeps
// the lookup on the queue index (see claimNextSQL); rows of the next
// recipients it reads are dropped.
const behindColumn = `(SELECT count(*) FROM (
        SELECT b.recipient FROM deliveries b
        WHERE (b.recipient, b.seq) > (d.recipient, d.seq) AND b.final_state IS NULL
        ORDER BY b.recipient, b.seq LIMIT $7::int) w
     WHERE w.recipient = d.recipient)`

// claimNextSQL claims the head of one recipient's line if it is due; it
// runs in the transaction that finishes the recipient's previous delivery,
// so a busy conversation moves on with one commit per message.
// The head is the first queued row at or after (recipient, 0) in the queue
// index's order, kept only if it is the recipient's: with recipient as a
// range rather than fixed, only that index yields rows in that order, so
// no statistics and no generic plan can make the planner walk the seq
// index through the history instead (with "recipient = $4 ORDER BY seq",
// a fresh ANALYZE of a table whose history is one recipient's did).
const claimNextSQL = `
WITH head AS (
    SELECT operation_id, old_state FROM (
        SELECT operation_id, state AS old_state, recipient FROM deliveries
        WHERE (recipient, seq) >= ($4::text, 0::bigint) AND final_state IS NULL
        ORDER BY recipient, seq LIMIT 1) first
    WHERE first.recipient = $4
), due AS (
    SELECT d.operation_id, head.old_state, (d.state = 'sending' AND d.claim_gen = $3 AND d.claim_token = $5) AS mine
    FROM deliveries d JOIN head ON d.operation_id = head.operation_id
    WHERE (d.state = 'pending' AND d.next_attempt_at <= $1)
       OR (d.state = 'sending' AND (d.lease_until < $1 OR (d.claim_gen < $3 AND $6)))
       OR (d.state = 'sending' AND d.claim_gen = $3 AND d.claim_token = $5)
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d
SET state = 'sending', attempts = d.attempts + CASE WHEN due.mine THEN 0 ELSE 1 END,
    lease_until = $1 + $2 * interval '1 millisecond', claim_gen = $3, claim_token = $5, updated_at = $1,
    ` + reclaimCounts + `
FROM due WHERE d.operation_id = due.operation_id
RETURNING ` + claimedColumns

// ClaimOptions are how a worker claims.
type ClaimOptions struct {
	Limit int
	Lease time.Duration
	// Gen is the worker's session lease generation.
	Gen int64
	// Token marks the rows this claim takes, so that they can be given
	// back (ReleaseClaims) when its answer is lost.
	Token string
	// Takeover lets the claim take deliveries being sent under an older
	// generation before their lease expires. A new holder waits a moment
	// before it does, so that the previous holder can write the outcomes it
	// kept through a database outage first.
	Takeover bool
	// Lookahead caps Claimed.Behind (0: not counted): the largest
	// coalesce_after of the routes that coalesce.
	Lookahead int
}

// Claim takes due deliveries for a worker, leasing them until now+lease.
func (db *DB) Claim(ctx context.Context, now time.Time, o ClaimOptions) ([]Claimed, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	gen := o.Gen
	rows, _ := db.pool.Query(ctx, claimSQL, now, o.Limit, o.Lease.Milliseconds(), gen, o.Token, o.Takeover, o.Lookahead)
	list, err := pgx.CollectRows(rows, scanClaimed(gen))
	if err != nil {
		return nil, classify("claim deliveries", err)
	}
	return list, nil
}

func scanClaimed(gen int64) pgx.RowToFunc[Claimed] {
	return func(row pgx.CollectableRow) (Claimed, error) {
		c := Claimed{Gen: gen}
		err := row.Scan(&c.OperationID, &c.Seq, &c.Route, &c.Conversation, &c.Target.To, &c.Target.Subject,
			&c.Target.Importance, &c.GroupKey, &c.Status, &c.Part, &c.Parts, &c.Text, &c.Attempt, &c.Failures,
			&c.Unconfirmed, &c.Resend, &c.Alone, &c.Reclaimed, &c.Supersedable, &c.Behind, &c.CreatedAt, &c.QueuedAt)
		return c, err
	}
}

// AttemptRecord is what one try to send left for the audit trail.
type AttemptRecord struct {
	UCWAOperationID string
	Outcome         string
	Pool            string
	HTTPStatus      int
	Code, Subcode   string
	Reason          string
	Error           string
	Latency         time.Duration
	StartedAt       time.Time
	FinishedAt      time.Time
	// CarriedBy names the delivery whose message carried this one (a
	// coalesced send); empty when it went out on its own.
	CarriedBy string
	// Carried counts the other deliveries this attempt's message carried.
	Carried int
}

// Finish is the end of one claim: the delivery's next state and, when a
// send was tried, its attempt record. Both are written in one transaction.
type Finish struct {
	OperationID string
	Attempt     int
	Gen         int64
	State       relay.State
	// NextAttemptAt matters when State is pending (a retry).
	NextAttemptAt time.Time
	// Failed counts this try against the delivery's max_attempts.
	Failed bool
	// Unconfirmed is the delivery's new count of unconfirmed sends.
	Unconfirmed int
	// Resend marks the next send "(resent)".
	Resend bool
	// Alone sends the delivery in a message of its own from now on.
	Alone     bool
	LastError string
	Record    *AttemptRecord
	Now       time.Time
	// QueuedAt is the claimed delivery's: a delivered outcome does not end
	// a delivery queued again since.
	QueuedAt time.Time
	// Late: the outcome is written after the claim may have lapsed (the
	// database was unreachable when it came). It is then fenced by the
	// attempt alone, not the session generation, and a delivered outcome
	// wins over any later claim or verdict: the server confirmed it, so the
	// delivery must not be sent again.
	Late bool
	// ClaimNext, when set, also claims the recipient's next delivery in the
	// same transaction if it is due (see FinishResult.Next).
	ClaimNext *NextClaim
	// Carried are the finishes of the deliveries this send carried
	// (coalescing), written in the same transaction before this one, so
	// that the claim of the recipient's next delivery sees them finished.
	// Their own ClaimNext and Carried are ignored.
	Carried []Finish
}

// WithoutRecords is f, and each finish it carries, without their attempt
// rows: what is written when the database refuses those, as the state
// matters more than the audit row. The copy shares no finish with f.
func (f Finish) WithoutRecords() Finish {
	f.Record = nil
	f.Carried = slices.Clone(f.Carried)
	for i := range f.Carried {
		f.Carried[i].Record = nil
	}
	return f
}

// NextClaim asks Finish to claim the recipient's next delivery.
type NextClaim struct {
	Recipient string
	Lease     time.Duration
	// Takeover and Lookahead as in ClaimOptions.
	Takeover  bool
	Lookahead int
}

// NextClaimToken is the claim token of the delivery a finish of attempt
// claims next (see ReleaseClaims).
func NextClaimToken(operationID string, attempt int) string {
	return operationID + "." + strconv.Itoa(attempt)
}

// FinishResult says what Finish did.
type FinishResult struct {
	// Recorded is false when the claim was no longer current (fenced out).
	Recorded bool
	// Next is the recipient's next delivery, claimed, when asked for and due.
	Next *Claimed
	// CarriedRecorded says, for each of Finish.Carried, whether it was
	// recorded (false: its claim was no longer current).
	CarriedRecorded []bool
}

// finishSQL moves a claimed delivery to its next state, fenced: only the
// claim that is still current (same attempt and session generation, still
// sending) may, so a late worker cannot overwrite a newer claim; and never
// a delivery queued again (redelivered) since it was claimed.
const finishSQL = `
UPDATE deliveries SET
    state = $4, next_attempt_at = CASE WHEN $4 = 'pending' THEN $5 ELSE next_attempt_at END,
    failures = failures + CASE WHEN $6 THEN 1 ELSE 0 END, resend = $7,
    last_error = NULLIF($8, ''), lease_until = NULL, updated_at = $9,
    delivered_at = CASE WHEN $4 = 'delivered' THEN $9 ELSE delivered_at END,
    unconfirmed = GREATEST(unconfirmed, $10), alone = alone OR $12::boolean
WHERE operation_id = $1 AND ($11::timestamptz IS NULL OR queued_at = $11) AND `

// finishFence keeps a late worker from overwriting a newer claim.
const finishFence = `attempts = $2 AND claim_gen = $3 AND state = 'sending'`

// lateFinishFence fences an outcome written after the database came back:
// the claim may belong to an older session generation (the lease lapsed
// meanwhile) but must not have been taken over (attempts would be higher).
const lateFinishFence = `$3::bigint IS NOT NULL AND attempts = $2 AND state = 'sending'`

// deliveredFence lets a delivered outcome, on time or late, end a delivery
// claimed again or given another verdict meanwhile (the server confirmed
// it: it must not be sent again), but not one an operator has redelivered
// since (queued again: queued_at moved).
const deliveredFence = `$3::bigint IS NOT NULL AND attempts >= $2 AND state IN ('pending', 'sending', 'uncertain', 'dead')`

const insertAttemptSQL = `
INSERT INTO attempts (operation_id, attempt, ucwa_operation_id, outcome, pool, http_status, ucwa_code,
    ucwa_subcode, reason, error, latency_ms, started_at, finished_at, carried_by, carried)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, 0), $7, $8, $9, $10, $11, $12, $13, NULLIF($14, ''), $15)
ON CONFLICT (operation_id, attempt) DO NOTHING`

// Finish records f, sharing a commit with other finishes in flight. The
// attempt record is kept even when the claim was no longer current, since
// the try happened.
func (db *DB) Finish(ctx context.Context, f Finish) (FinishResult, error) {
	res, err := db.finisher.do(ctx, f)
	if err != nil {
		return FinishResult{}, classify("finish delivery", err)
	}
	return res, nil
}

func (db *DB) writeFinishes(items []Finish) ([]FinishResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.OpTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, f := range items {
		for _, cf := range f.Carried {
			queueFinish(b, cf)
		}
		queueFinish(b, f)
		if n := f.ClaimNext; n != nil {
			b.Queue(claimNextSQL, f.Now, n.Lease.Milliseconds(), f.Gen, n.Recipient, NextClaimToken(f.OperationID, f.Attempt), n.Takeover, n.Lookahead)
		}
	}
	br := db.pool.SendBatch(ctx, b)
	out := make([]FinishResult, len(items))
	for i, f := range items {
		for _, cf := range f.Carried {
			ok, err := readFinish(br, cf)
			if err != nil {
				_ = br.Close()
				return nil, err
			}
			out[i].CarriedRecorded = append(out[i].CarriedRecorded, ok)
		}
		ok, err := readFinish(br, f)
		if err != nil {
			_ = br.Close()
			return nil, err
		}
		out[i].Recorded = ok
		if f.ClaimNext != nil {
			rows, _ := br.Query()
			next, err := pgx.CollectRows(rows, scanClaimed(f.Gen))
			if err != nil {
				_ = br.Close()
				return nil, fmt.Errorf("claim next delivery: %w", err)
			}
			if len(next) == 1 {
				out[i].Next = &next[0]
			}
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("commit finishes: %w", err)
	}
	return out, nil
}

// queueFinish queues f's attempt record, if any, and its update.
func queueFinish(b *pgx.Batch, f Finish) {
	if r := f.Record; r != nil {
		b.Queue(insertAttemptSQL, f.OperationID, f.Attempt, clean(r.UCWAOperationID), clean(r.Outcome), clean(r.Pool),
			r.HTTPStatus, clean(r.Code), clean(r.Subcode), clean(r.Reason), clean(r.Error),
			float64(r.Latency.Microseconds())/1000, r.StartedAt, r.FinishedAt, r.CarriedBy, r.Carried)
	}
	var queuedAt *time.Time // no check when unknown
	if !f.QueuedAt.IsZero() {
		queuedAt = &f.QueuedAt
	}
	fence := finishFence
	switch {
	case f.State == relay.StateDelivered:
		fence = deliveredFence
	case f.Late:
		fence = lateFinishFence
	}
	b.Queue(finishSQL+fence, f.OperationID, f.Attempt, f.Gen, string(f.State), f.NextAttemptAt, f.Failed, f.Resend,
		clean(f.LastError), f.Now, f.Unconfirmed, queuedAt, f.Alone)
}

// readFinish reads the results queueFinish queued for f: whether the
// update applied.
func readFinish(br pgx.BatchResults, f Finish) (bool, error) {
	if f.Record != nil {
		if _, err := br.Exec(); err != nil {
			return false, fmt.Errorf("record attempt: %w", err)
		}
	}
	tag, err := br.Exec()
	if err != nil {
		return false, fmt.Errorf("finish delivery: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// clean makes text from outside (a server's error codes and messages) fit
// a text column: valid UTF-8 without NUL, which PostgreSQL refuses.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// ReleaseClaims gives back every delivery still claimed under one of
// tokens, as if those claims had not happened: claims whose answer was
// lost (the database went away as they committed), so nothing was sent.
func (db *DB) ReleaseClaims(ctx context.Context, tokens []string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	tag, err := db.pool.Exec(ctx, `
UPDATE deliveries SET state = 'pending', attempts = attempts - 1, lease_until = NULL, claim_token = NULL
WHERE final_state IS NULL AND state = 'sending' AND claim_token = ANY($1)`, tokens)
	if err != nil {
		return 0, classify("release lost claims", err)
	}
	return tag.RowsAffected(), nil
}

// Release gives back a delivery claimed but never tried, as if the claim
// had not happened (fenced like a finish). A claim that is no longer
// current is left alone.
func (db *DB) Release(ctx context.Context, c Claimed) error {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	_, err := db.pool.Exec(ctx, `
UPDATE deliveries SET state = 'pending', attempts = attempts - 1, lease_until = NULL
WHERE operation_id = $1 AND attempts = $2 AND claim_gen = $3 AND state = 'sending'`, c.OperationID, c.Attempt, c.Gen)
	return classify("release delivery", err)
}

// supersedeFindSQL finds the first resolved delivery queued after a firing
// one. It orders by the whole key of deliveries_resolved_idx, which only
// that index yields in order.
const supersedeFindSQL = `
SELECT operation_id, seq FROM deliveries
WHERE recipient = $1 AND route = $2 AND conversation = $3 AND group_key = $4 AND status = 'resolved'
  AND final_state IS NULL AND state = 'pending' AND seq > $5
ORDER BY recipient, group_key, seq LIMIT 1 FOR UPDATE`

// Supersede looks for a resolved delivery of c's alert group, to the same
// recipient through the same route and conversation, queued after c. When
// there is one, every firing delivery of the group queued before it (c
// included) becomes superseded, and note is put in front of the resolved
// message's text, all in one transaction. It returns the resolved
// delivery's operationId, or "" when there is none (nothing changes).
func (db *DB) Supersede(ctx context.Context, c Claimed, note string, now time.Time) (string, error) {
	if c.GroupKey == "" || c.Status != "firing" {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var resolved string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var seq int64
		err := tx.QueryRow(ctx, supersedeFindSQL, c.Target.To, c.Route, c.Conversation, c.GroupKey, c.Seq).Scan(&resolved, &seq)
		if errors.Is(err, pgx.ErrNoRows) {
			resolved = ""
			return nil
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
UPDATE deliveries SET state = 'superseded', superseded_by = $6, lease_until = NULL, updated_at = $9,
    last_error = 'superseded: the group resolved before this was sent'
WHERE recipient = $1 AND route = $2 AND conversation = $3 AND group_key = $4 AND status = 'firing'
  AND seq < $5 AND final_state IS NULL
  AND (state = 'pending' OR (operation_id = $7 AND state = 'sending' AND attempts = $8))`,
			c.Target.To, c.Route, c.Conversation, c.GroupKey, seq, resolved, c.OperationID, c.Attempt, now)
		if err != nil {
			return err
		}
		n := tag.RowsAffected()
		_, err = tx.Exec(ctx, `UPDATE deliveries SET text = $2 || text, updated_at = $3 WHERE operation_id = $1`,
			resolved, fmt.Sprintf(note, n), now)
		return err
	})
	if err != nil {
		return "", classify("supersede deliveries", err)
	}
	return resolved, nil
}
