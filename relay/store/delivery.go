package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay"
)

// Delivery is one message to one conversation, as the audit shows it.
type Delivery struct {
	OperationID    string `json:"operationId"`
	NotificationID string `json:"notificationId"`
	Route          string `json:"route"`
	Conversation   string `json:"conversation"`
	Recipient      string `json:"recipient"`
	Subject        string `json:"subject,omitempty"`
	Importance     string `json:"importance"`
	Part           int    `json:"part"`
	Parts          int    `json:"parts"`
	Text           string `json:"text"`
	// AlertName, GroupStatus and Receiver are what the audit filters on
	// (empty for deliveries recorded before relay kept them).
	AlertName   string      `json:"alertname,omitempty"`
	GroupStatus string      `json:"groupStatus,omitempty"`
	Receiver    string      `json:"receiver,omitempty"`
	State       relay.State `json:"state"`
	Attempts    int         `json:"attempts"`
	// Failures counts the attempts that failed for the message's own sake
	// (what max_attempts caps); Unconfirmed the sends the server never
	// confirmed (what max_resends caps).
	Failures      int        `json:"failures"`
	Unconfirmed   int        `json:"unconfirmed"`
	NextAttemptAt time.Time  `json:"nextAttemptAt"`
	LeaseUntil    *time.Time `json:"leaseUntil,omitempty"`
	LastError     string     `json:"lastError,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	DeliveredAt   *time.Time `json:"deliveredAt,omitempty"`
}

const deliveryColumns = `operation_id, notification_id, route, conversation, recipient, subject, importance,
    part, parts, text, alertname, group_status, receiver, state, attempts, failures, unconfirmed, next_attempt_at, lease_until, coalesce(last_error, ''),
    created_at, updated_at, delivered_at`

func scanDelivery(row pgx.CollectableRow) (Delivery, error) {
	var d Delivery
	err := row.Scan(&d.OperationID, &d.NotificationID, &d.Route, &d.Conversation, &d.Recipient, &d.Subject,
		&d.Importance, &d.Part, &d.Parts, &d.Text, &d.AlertName, &d.GroupStatus, &d.Receiver, &d.State, &d.Attempts, &d.Failures, &d.Unconfirmed, &d.NextAttemptAt, &d.LeaseUntil,
		&d.LastError, &d.CreatedAt, &d.UpdatedAt, &d.DeliveredAt)
	return d, err
}

// Attempt is one try to send a delivery.
type Attempt struct {
	Attempt         int       `json:"attempt"`
	UCWAOperationID string    `json:"ucwaOperationId"`
	Outcome         string    `json:"outcome"`
	Pool            string    `json:"pool,omitempty"`
	HTTPStatus      *int      `json:"httpStatus,omitempty"`
	UCWACode        string    `json:"ucwaCode,omitempty"`
	UCWASubcode     string    `json:"ucwaSubcode,omitempty"`
	Reason          string    `json:"reason,omitempty"`
	Error           string    `json:"error,omitempty"`
	LatencyMS       float64   `json:"latencyMs"`
	StartedAt       time.Time `json:"startedAt"`
	FinishedAt      time.Time `json:"finishedAt"`
	// CarriedBy names the delivery whose message carried this attempt
	// (coalescing under a backlog); Carried counts the other deliveries an
	// attempt's message carried.
	CarriedBy string `json:"carriedBy,omitempty"`
	Carried   int    `json:"carried,omitempty"`
}

// DeliveryDetail is a delivery with everything the audit knows about it.
type DeliveryDetail struct {
	Delivery
	Format string `json:"format"`
	// Event is the source's event type (github, gitlab).
	Event    string          `json:"event,omitempty"`
	DedupKey string          `json:"dedupKey"`
	Payload  json.RawMessage `json:"payload"`
	// ReceivedAt is when the notification first arrived.
	ReceivedAt time.Time `json:"receivedAt"`
	AttemptLog []Attempt `json:"attemptLog"`
	// Duplicates counts the identical notifications received inside the
	// window; DuplicatesAt lists when, newest first (the latest 100).
	Duplicates   int         `json:"duplicates"`
	DuplicatesAt []time.Time `json:"duplicatesAt"`
	// Redeliveries lists who asked for each redelivery and when, oldest
	// first.
	Redeliveries []Redelivery `json:"redeliveries"`
}

// maxDuplicateTimes caps how many duplicate arrival times GetDelivery lists.
const maxDuplicateTimes = 100

// ListFilter selects deliveries for the audit list. Zero fields do not filter.
type ListFilter struct {
	Route        string
	Conversation string
	AlertName    string
	// Search matches alert names and summaries (the text's first line)
	// containing it, whatever the case.
	Search string
	State  relay.State
	// Since and Until bound created_at: Since <= created_at < Until.
	Since, Until time.Time
	// Cursor continues a previous page (the NextCursor it returned).
	Cursor string
	// Limit caps the page (default 50, at most 500).
	Limit int
}

// MaxListLimit is the largest page ListDeliveries returns.
const MaxListLimit = 500

func encodeCursor(at time.Time, id string) string {
	raw := strconv.FormatInt(at.UnixMicro(), 10) + "|" + id
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(c string) (time.Time, string, error) {
	bad := fmt.Errorf("%w: cursor is not one this API returned", relay.ErrInvalid)
	if len(c) > 200 {
		return time.Time{}, "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	us, id, ok := strings.Cut(string(raw), "|")
	if !ok || id == "" {
		return time.Time{}, "", bad
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil {
		return time.Time{}, "", bad
	}
	return time.UnixMicro(n).UTC(), id, nil
}

// GetDelivery returns one delivery with its notification, attempts and
// duplicates, or relay.ErrNotFound.
func (db *DB) GetDelivery(ctx context.Context, operationID string) (*DeliveryDetail, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var out *DeliveryDetail
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, "SELECT "+deliveryColumns+" FROM deliveries WHERE operation_id = $1", operationID)
		d, err := pgx.CollectExactlyOneRow(rows, scanDelivery)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("delivery %q: %w", operationID, relay.ErrNotFound)
		}
		if err != nil {
			return err
		}
		out = &DeliveryDetail{Delivery: d}
		var payload []byte
		err = tx.QueryRow(ctx, `
SELECT format, event, dedup_key, coalesce(body, convert_to(payload::text, 'UTF8')), received_at
FROM notifications WHERE id = $1`,
			d.NotificationID).Scan(&out.Format, &out.Event, &out.DedupKey, &payload, &out.ReceivedAt)
		if err != nil {
			return err
		}
		out.Payload = payload
		rows, _ = tx.Query(ctx, `
SELECT attempt, ucwa_operation_id, outcome, pool, http_status, ucwa_code, ucwa_subcode, reason, error,
       latency_ms, started_at, finished_at, coalesce(carried_by, ''), carried
FROM attempts WHERE operation_id = $1 ORDER BY attempt`, operationID)
		out.AttemptLog, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Attempt, error) {
			var a Attempt
			err := row.Scan(&a.Attempt, &a.UCWAOperationID, &a.Outcome, &a.Pool, &a.HTTPStatus, &a.UCWACode,
				&a.UCWASubcode, &a.Reason, &a.Error, &a.LatencyMS, &a.StartedAt, &a.FinishedAt, &a.CarriedBy, &a.Carried)
			return a, err
		})
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM duplicates WHERE notification_id = $1`,
			d.NotificationID).Scan(&out.Duplicates); err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, `SELECT received_at FROM duplicates WHERE notification_id = $1
ORDER BY received_at DESC LIMIT $2`, d.NotificationID, maxDuplicateTimes)
		out.DuplicatesAt, err = pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return err
		}
		out.Redeliveries, err = redeliveriesOf(ctx, tx, operationID)
		return err
	})
	if errors.Is(err, relay.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, classify("get delivery", err)
	}
	return out, nil
}
