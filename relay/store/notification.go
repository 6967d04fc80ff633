package store

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	// Payload is the request body as received, stored byte for byte.
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
	// AlertName, GroupStatus and Receiver are what the audit filters on:
	// the alert's name, the group's status and Alertmanager's receiver, or
	// for CI sources the pipeline's name, its outcome and the event kind.
	AlertName   string
	GroupStatus string
	Receiver    string
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
	// JSON between systems is UTF-8 (RFC 8259); the body is stored and
	// shown as received, so one that is not is refused with a 400.
	if !utf8.Valid(n.Payload) {
		return EnqueueResult{}, fmt.Errorf("enqueue notification: %w: the payload is not valid UTF-8", relay.ErrInvalid)
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
// NotifyChannel: only needed while another replica holds the session (the
// holder's own worker is woken in process). Off by default.
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
		// At most one announcement per few milliseconds: each is a commit
		// of its own, and the listener needs only one per burst.
		select {
		case <-db.notifyStop:
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// enqueueSQL records a batch of notifications in one statement. The upsert
// on dedup_keys decides for each: a fresh key, or one whose window has
// passed, takes the notification's id and the dependent inserts run; a key
// still inside its window keeps the original id, and only a duplicates row
// is added. ON CONFLICT waits for a twin's transaction and then sees its
// row, so concurrent twins resolve to one notification. Twins inside the
// batch ($19) are left out of the upsert (a statement may not update a row
// twice) and only counted as duplicates. $9 is the batch's time.
const enqueueSQL = `
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                         $7::text[], $8::bytea[])
        WITH ORDINALITY AS i(key, id, opids, expires, route, format, event, payload, idx)
), k AS (
    INSERT INTO dedup_keys AS d (key, notification_id, operation_ids, expires_at)
    SELECT key, id, string_to_array(opids, ','), expires FROM input ORDER BY key
    ON CONFLICT (key) DO UPDATE SET
        notification_id = CASE WHEN d.expires_at <= $9 THEN excluded.notification_id ELSE d.notification_id END,
        operation_ids   = CASE WHEN d.expires_at <= $9 THEN excluded.operation_ids   ELSE d.operation_ids   END,
        expires_at      = CASE WHEN d.expires_at <= $9 THEN excluded.expires_at      ELSE d.expires_at      END
    RETURNING d.key, d.notification_id, d.operation_ids
), n AS (
    INSERT INTO notifications (id, route, format, event, dedup_key, body, received_at)
    SELECT i.id, i.route, i.format, i.event, i.key, i.payload, $9
    FROM input i JOIN k ON k.key = i.key AND k.notification_id = i.id
    RETURNING id
), dl AS (
    INSERT INTO deliveries (operation_id, notification_id, route, conversation, recipient, subject,
                            importance, group_key, status, part, parts, text, alertname, group_status, receiver,
                            next_attempt_at, created_at, queued_at, updated_at)
    SELECT m.op, n.id, i.route, m.conv, m.rcpt, m.subj, m.imp, m.gk, m.st, m.part, m.parts, m.txt,
           m.an, m.gs, m.rcv, $9, $9, $9, $9
    FROM unnest($10::int[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                $17::text[], $18::int[], $20::int[], $21::text[], $22::text[], $23::text[], $24::text[])
         WITH ORDINALITY AS m(nidx, op, conv, rcpt, subj, imp, gk, st, part, parts, txt, an, gs, rcv, ord)
    JOIN input i ON i.idx = m.nidx
    JOIN n ON n.id = i.id
    ORDER BY m.ord
), dup AS (
    INSERT INTO duplicates (notification_id, received_at)
    SELECT k.notification_id, $9 FROM k JOIN input i ON i.key = k.key WHERE k.notification_id <> i.id
    UNION ALL
    SELECT k.notification_id, $9 FROM unnest($19::text[]) AS t(key) JOIN k ON k.key = t.key
)
SELECT key, notification_id, operation_ids FROM k`

// enqueueOneSQL is enqueueSQL for a batch of one notification, the common
// case at low load: the same writes, with the notification's values as
// plain parameters. PostgreSQL executes it in about three quarters of the
// time, which is most of a lone webhook's latency.
const enqueueOneSQL = `
WITH k AS (
    INSERT INTO dedup_keys AS d (key, notification_id, operation_ids, expires_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (key) DO UPDATE SET
        notification_id = CASE WHEN d.expires_at <= $9 THEN excluded.notification_id ELSE d.notification_id END,
        operation_ids   = CASE WHEN d.expires_at <= $9 THEN excluded.operation_ids   ELSE d.operation_ids   END,
        expires_at      = CASE WHEN d.expires_at <= $9 THEN excluded.expires_at      ELSE d.expires_at      END
    RETURNING d.notification_id, d.operation_ids
), n AS (
    INSERT INTO notifications (id, route, format, event, dedup_key, body, received_at)
    SELECT $2, $5, $6, $7, $1, $8::bytea, $9 FROM k WHERE k.notification_id = $2
    RETURNING id
), dl AS (
    INSERT INTO deliveries (operation_id, notification_id, route, conversation, recipient, subject,
                            importance, group_key, status, part, parts, text, alertname, group_status, receiver,
                            next_attempt_at, created_at, queued_at, updated_at)
    SELECT m.op, n.id, $5, m.conv, m.rcpt, m.subj, m.imp, m.gk, m.st, m.part, m.parts, m.txt,
           m.an, m.gs, m.rcv, $9, $9, $9, $9
    FROM unnest($3::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                $16::int[], $17::int[], $18::text[], $19::text[], $20::text[], $21::text[])
         WITH ORDINALITY AS m(op, conv, rcpt, subj, imp, gk, st, part, parts, txt, an, gs, rcv, ord)
    CROSS JOIN n
    ORDER BY m.ord
), dup AS (
    INSERT INTO duplicates (notification_id, received_at)
    SELECT k.notification_id, $9 FROM k WHERE k.notification_id <> $2
)
SELECT notification_id, operation_ids FROM k`

// writeOne writes a batch of one with enqueueOneSQL.
func (db *DB) writeOne(ctx context.Context, it enqueueItem) ([]EnqueueResult, error) {
	n := it.n
	var m messageColumns
	m.add(n.Messages, 0)
	var res EnqueueResult
	err := db.pool.QueryRow(ctx, enqueueOneSQL, n.DedupKey, it.id, it.opIDs, it.now.Add(n.Window),
		n.Route, n.Format, n.Event, n.Payload, it.now,
		m.convs, m.rcpts, m.subjs, m.imps, m.gks, m.sts, m.parts, m.counts, m.txts, m.names, m.gsts, m.rcvs).Scan(&res.NotificationID, &res.OperationIDs)
	if err != nil {
		return nil, fmt.Errorf("record notification: %w", err)
	}
	res.Duplicate = res.NotificationID != it.id
	return []EnqueueResult{res}, nil
}

// messageColumns holds the messages of a write as one array per
// deliveries column, as both enqueue statements take them.
type messageColumns struct {
	nidx, parts, counts                 []int32
	convs, rcpts, subjs, imps, gks, sts []string
	txts, names, gsts, rcvs             []string
}

// add appends msgs, the messages of the notification numbered nidx in the
// batch. Text from the sender is cleaned to what a text column holds
// (decoders already refuse NUL; a template can still cut a character).
func (c *messageColumns) add(msgs []NewMessage, nidx int) {
	for _, m := range msgs {
		imp := m.Target.Importance
		if imp == "" {
			imp = "Normal"
		}
		c.nidx = append(c.nidx, int32(nidx))
		c.convs, c.rcpts, c.subjs = append(c.convs, m.Conversation), append(c.rcpts, m.Target.To), append(c.subjs, m.Target.Subject)
		c.imps, c.gks, c.sts, c.txts = append(c.imps, imp), append(c.gks, clean(m.GroupKey)), append(c.sts, m.Status), append(c.txts, clean(m.Text))
		c.names, c.gsts, c.rcvs = append(c.names, clean(m.AlertName)), append(c.gsts, clean(m.GroupStatus)), append(c.rcvs, clean(m.Receiver))
		c.parts, c.counts = append(c.parts, int32(max(m.Part, 1))), append(c.counts, int32(max(m.Parts, m.Part, 1)))
	}
}

// writeEnqueues writes a batch in one statement, one round trip and one
// commit.
func (db *DB) writeEnqueues(items []enqueueItem) ([]EnqueueResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.OpTimeout)
	defer cancel()
	if len(items) == 1 {
		return db.writeOne(ctx, items[0])
	}
	var (
		keys, ids, opids, routes, formats, events []string
		payloads                                  [][]byte
		expires                                   []time.Time
		twins, ops                                []string
		m                                         messageColumns
		now                                       time.Time
	)
	primary := make(map[string]int, len(items)) // key → index of its first item
	for i, it := range items {
		now = maxTime(now, it.now)
		if _, seen := primary[it.n.DedupKey]; seen {
			twins = append(twins, it.n.DedupKey)
			continue
		}
		primary[it.n.DedupKey] = i
		n := it.n
		keys, ids, opids = append(keys, n.DedupKey), append(ids, it.id), append(opids, strings.Join(it.opIDs, ","))
		expires = append(expires, it.now.Add(n.Window))
		routes, formats, events, payloads = append(routes, n.Route), append(formats, n.Format),
			append(events, n.Event), append(payloads, n.Payload)
		ops = append(ops, it.opIDs...)
		m.add(n.Messages, len(keys))
	}
	rows, _ := db.pool.Query(ctx, enqueueSQL, keys, ids, opids, expires, routes, formats, events, payloads, now,
		m.nidx, ops, m.convs, m.rcpts, m.subjs, m.imps, m.gks, m.sts, m.parts, twins, m.counts, m.txts,
		m.names, m.gsts, m.rcvs)
	type keyed struct {
		id  string
		ops []string
	}
	byKey := make(map[string]keyed, len(keys))
	var key string
	var k keyed
	_, err := pgx.ForEachRow(rows, []any{&key, &k.id, &k.ops}, func() error {
		byKey[key] = keyed{k.id, k.ops}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record notifications: %w", err)
	}
	results := make([]EnqueueResult, len(items))
	for i, it := range items {
		got, ok := byKey[it.n.DedupKey]
		if !ok {
			return nil, fmt.Errorf("record notifications: no result for key %s", it.n.DedupKey)
		}
		results[i] = EnqueueResult{NotificationID: got.id, OperationIDs: got.ops,
			Duplicate: primary[it.n.DedupKey] != i || got.id != it.id}
	}
	return results, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
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
