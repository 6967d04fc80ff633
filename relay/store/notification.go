package store

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay"
)

// NewNotification is an accepted webhook notification, rendered, ready to be
// recorded with one delivery per message.
type NewNotification struct {
	Route  string
	Format string
	// Event is the source's event type header, kept to render the payload
	// again later (empty for alertmanager).
	Event    string
	DedupKey string
	// Payload is the request body as received (JSON).
	Payload []byte
	// Window is how long identical content counts as a duplicate.
	Window   time.Duration
	Messages []NewMessage
}

// NewMessage is one message to send: a conversation and the text for it.
type NewMessage struct {
	Conversation string
	Target       relay.Target
	// GroupKey and Status identify the alert group and whether this message
	// is about firing or resolved alerts; the worker uses them to supersede
	// stale messages. Empty for sources without groups.
	GroupKey    string
	Status      string
	Part, Parts int
	Text        string
}

// EnqueueResult says what Enqueue recorded.
type EnqueueResult struct {
	NotificationID string
	OperationIDs   []string
	// Duplicate is true when the content was already recorded inside its
	// window: nothing new was created and the ids are the original ones.
	Duplicate bool
}

type enqueueItem struct {
	n     *NewNotification
	id    string
	opIDs []string
	now   time.Time
}

var errShuttingDown = fmt.Errorf("%w: shutting down", relay.ErrUnavailable)

// Enqueue records n and its deliveries, or recognises it as a duplicate, and
// returns only once that is durable. Concurrent calls share transactions
// (group commit): each caller still waits for its own row's commit.
// Identical content arriving at the same instant creates exactly one
// notification; the other caller gets Duplicate with the same ids.
func (db *DB) Enqueue(ctx context.Context, n *NewNotification) (EnqueueResult, error) {
	if len(n.Messages) == 0 {
		return EnqueueResult{}, fmt.Errorf("enqueue notification: %w: no messages", relay.ErrInvalid)
	}
	now := db.opts.Now().UTC()
	item := enqueueItem{n: n, id: newID(now), now: now}
	item.opIDs = make([]string, len(n.Messages))
	for i := range n.Messages {
		item.opIDs[i] = item.id + "-" + strconv.Itoa(i+1)
	}
	res, err := db.enqueuer.do(ctx, item)
	if err != nil {
		return EnqueueResult{}, classify("enqueue notification", err)
	}
	if !res.Duplicate {
		db.signalEnqueued()
	}
	return res, nil
}

// Enqueued is signalled (without blocking, coalescing) after new deliveries
// are committed by this process, so a worker here can start at once.
func (db *DB) Enqueued() <-chan struct{} { return db.enqueued }

func (db *DB) signalEnqueued() {
	select {
	case db.enqueued <- struct{}{}:
	default:
	}
	if db.notifyOthers.Load() {
		select {
		case db.notifyCh <- struct{}{}:
		default:
		}
	}
}

// NotifyChannel is the PostgreSQL NOTIFY channel on which new deliveries
// are announced, so the replica holding the UCWA session wakes up within
// milliseconds whichever replica took the webhook.
const NotifyChannel = "relay_deliveries"

// SetNotifyOthers says whether commits of new deliveries are announced on
// NotifyChannel (the default). The replica holding the session turns it
// off: its own worker is woken in process.
func (db *DB) SetNotifyOthers(on bool) { db.notifyOthers.Store(on) }

// notifier sends one NOTIFY per burst of commits, in a transaction of its
// own. PostgreSQL serializes the commits of transactions that notify, so
// putting NOTIFY in the ingest transactions would undo group commit.
func (db *DB) notifier() {
	defer db.notifyWG.Done()
	for {
		select {
		case <-db.notifyStop:
			return
		case <-db.notifyCh:
		}
		ctx, cancel := context.WithTimeout(context.Background(), db.opts.OpTimeout)
		if _, err := db.pool.Exec(ctx, `SELECT pg_notify('`+NotifyChannel+`', '')`); err != nil {
			db.logger.Debug("announce new deliveries", slog.Any("err", err))
		}
		cancel()
	}
}

// enqueueSQL records one notification in one statement. The upsert on
// dedup_keys decides: a fresh key, or one whose window has passed, takes
// this notification's id and the dependent inserts run; a key still inside
// its window keeps the original id, and only a duplicates row is added.
// ON CONFLICT waits for a twin's transaction and then sees its row, so
// concurrent twins resolve to one notification.
const enqueueSQL = `
WITH k AS (
    INSERT INTO dedup_keys AS d (key, notification_id, operation_ids, expires_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (key) DO UPDATE SET
        notification_id = CASE WHEN d.expires_at <= $5 THEN excluded.notification_id ELSE d.notification_id END,
        operation_ids   = CASE WHEN d.expires_at <= $5 THEN excluded.operation_ids   ELSE d.operation_ids   END,
        expires_at      = CASE WHEN d.expires_at <= $5 THEN excluded.expires_at      ELSE d.expires_at      END
    RETURNING d.notification_id, d.operation_ids
), n AS (
    INSERT INTO notifications (id, route, format, event, dedup_key, payload, received_at)
    SELECT $2, $6, $7, $16, $1, $8, $5 FROM k WHERE k.notification_id = $2
    RETURNING id
), dl AS (
    INSERT INTO deliveries (operation_id, notification_id, route, conversation, recipient, subject,
                            importance, group_key, status, part, parts, text, next_attempt_at,
                            created_at, queued_at, updated_at)
    SELECT m.op, n.id, $6, m.conv, m.rcpt, m.subj, m.imp, m.gk, m.st, m.part, m.parts, m.txt, $5, $5, $5, $5
    FROM n, unnest($3::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int[], $14::int[], $15::text[],
                   $17::text[], $18::text[])
         WITH ORDINALITY AS m(op, conv, rcpt, subj, imp, part, parts, txt, gk, st, ord)
    ORDER BY m.ord
), dup AS (
    INSERT INTO duplicates (notification_id, received_at)
    SELECT k.notification_id, $5 FROM k WHERE k.notification_id <> $2
)
SELECT notification_id, operation_ids FROM k`

func (db *DB) writeEnqueues(items []enqueueItem) ([]EnqueueResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.OpTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, it := range items {
		n := it.n
		k := len(n.Messages)
		convs, rcpts, subjs, imps, txts := make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
		gks, sts := make([]string, k), make([]string, k)
		parts, counts := make([]int32, k), make([]int32, k)
		for i, m := range n.Messages {
			convs[i], rcpts[i], subjs[i], imps[i], txts[i] = m.Conversation, m.Target.To, m.Target.Subject, m.Target.Importance, m.Text
			gks[i], sts[i] = m.GroupKey, m.Status
			if imps[i] == "" {
				imps[i] = "Normal"
			}
			parts[i], counts[i] = int32(max(m.Part, 1)), int32(max(m.Parts, m.Part, 1))
		}
		b.Queue(enqueueSQL, n.DedupKey, it.id, it.opIDs, it.now.Add(n.Window), it.now, n.Route, n.Format,
			string(n.Payload), convs, rcpts, subjs, imps, parts, counts, txts, n.Event, gks, sts)
	}
	results := make([]EnqueueResult, len(items))
	br := db.pool.SendBatch(ctx, b)
	for i, it := range items {
		var res EnqueueResult
		if err := br.QueryRow().Scan(&res.NotificationID, &res.OperationIDs); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("record notification: %w", err)
		}
		res.Duplicate = res.NotificationID != it.id
		results[i] = res
	}
	// Close reads what is left and reports the implicit transaction's commit.
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("commit notifications: %w", err)
	}
	return results, nil
}

// SweepDedupKeys deletes deduplication keys whose window ended before
// cutoff, at most limit of them, and says how many went. Expired keys
// already behave as absent; sweeping only keeps the table small.
func (db *DB) SweepDedupKeys(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	const q = `
DELETE FROM dedup_keys WHERE key IN (
    SELECT key FROM dedup_keys WHERE expires_at < $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)`
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	tag, err := db.pool.Exec(ctx, q, cutoff, limit)
	if err != nil {
		return 0, classify("sweep dedup keys", err)
	}
	return tag.RowsAffected(), nil
}
