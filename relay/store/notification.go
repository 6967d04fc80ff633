package store

import (
	"context"
	"errors"
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
	// Refused here rather than by PostgreSQL: the sender gets a 400 saying
	// what is wrong, where a value the database refuses is an internal
	// error (and, in a batch, fails the whole commit and makes each of its
	// requests be written again on its own).
	if err := checkJSONB(n.Payload); err != nil {
		return EnqueueResult{}, fmt.Errorf("enqueue notification: %w: %w", relay.ErrInvalid, err)
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

// checkJSONB reports what in a JSON text PostgreSQL's jsonb refuses although
// the JSON is valid: invalid UTF-8, the escape \u0000 (jsonb values are
// text, which cannot hold NUL), escaped surrogates that do not form a pair,
// and numbers beyond what its numeric type holds. The payload is the
// sender's, so these are answered 400 here; a value the database refuses
// later is a bug of ours.
func checkJSONB(payload []byte) error {
	if !utf8.Valid(payload) {
		return errors.New("the payload is not valid UTF-8")
	}
	hex4 := func(i int) (rune, bool) {
		if i+4 > len(payload) {
			return 0, false
		}
		v, err := strconv.ParseUint(string(payload[i:i+4]), 16, 32)
		return rune(v), err == nil
	}
	inString := false
	for i := 0; i < len(payload); i++ {
		c := payload[i]
		if !inString {
			switch {
			case c == '"':
				inString = true
			case c == '-' || c >= '0' && c <= '9':
				end, err := checkNumber(payload, i)
				if err != nil {
					return err
				}
				i = end - 1
			}
			continue
		}
		if c == '"' {
			inString = false
			continue
		}
		if c != '\\' || i+1 >= len(payload) {
			continue
		}
		if payload[i+1] != 'u' {
			i++ // an escaped character, perhaps a backslash or a quote
			continue
		}
		r, ok := hex4(i + 2)
		switch {
		case !ok:
			return errors.New("the payload has a malformed \\u escape")
		case r == 0:
			return errors.New("the payload has the escape \\u0000, which PostgreSQL cannot store")
		case r >= 0xDC00 && r <= 0xDFFF:
			return fmt.Errorf("the payload has a lone surrogate escape \\u%04x", r)
		case r >= 0xD800 && r < 0xDC00:
			low, ok := hex4(i + 8)
			if !ok || payload[i+6] != '\\' || payload[i+7] != 'u' || low < 0xDC00 || low > 0xDFFF {
				return fmt.Errorf("the payload has a lone surrogate escape \\u%04x", r)
			}
			i += 11
		default:
			i += 5
		}
	}
	return nil
}

// Limits of PostgreSQL's numeric type, which jsonb stores numbers in: a
// value's first significant digit at most maxNumericWeight places before
// the decimal point, at most maxNumericScale digits after it (as written,
// trailing zeros included), and an exponent below maxNumericExponent.
const (
	maxNumericWeight   = 131071 // (NUMERIC_WEIGHT_MAX+1) * 4 decimal digits - 1
	maxNumericScale    = 16383  // NUMERIC_DSCALE_MAX
	maxNumericExponent = 1<<30 - 1
)

// checkNumber reads the JSON number starting at payload[i] and reports
// whether jsonb can hold it. It returns the index just past the number.
func checkNumber(payload []byte, i int) (int, error) {
	start := i
	if payload[i] == '-' {
		i++
	}
	var intDigits, fracDigits int
	first := -1 // index among the mantissa's digits of the first non-zero one
	digits := func(count *int) {
		for ; i < len(payload) && payload[i] >= '0' && payload[i] <= '9'; i++ {
			if first < 0 && payload[i] != '0' {
				first = intDigits + fracDigits
			}
			*count++
		}
	}
	digits(&intDigits)
	if i < len(payload) && payload[i] == '.' {
		i++
		digits(&fracDigits)
	}
	exp := 0
	if i < len(payload) && (payload[i] == 'e' || payload[i] == 'E') {
		i++
		neg := false
		if i < len(payload) && (payload[i] == '+' || payload[i] == '-') {
			neg = payload[i] == '-'
			i++
		}
		for ; i < len(payload) && payload[i] >= '0' && payload[i] <= '9'; i++ {
			exp = min(exp*10+int(payload[i]-'0'), maxNumericExponent)
		}
		if neg {
			exp = -exp
		}
	}
	weight := 0
	if first >= 0 {
		weight = intDigits - 1 - first + exp
	}
	if exp >= maxNumericExponent || exp <= -maxNumericExponent ||
		weight > maxNumericWeight || fracDigits-exp > maxNumericScale {
		return i, fmt.Errorf("the payload has the number %s, beyond what PostgreSQL can store", truncateNumber(payload[start:i]))
	}
	return i, nil
}

func truncateNumber(b []byte) string {
	if len(b) <= 32 {
		return string(b)
	}
	return string(b[:16]) + "..." + string(b[len(b)-8:])
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
                         $7::text[], $8::text[])
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
    INSERT INTO notifications (id, route, format, event, dedup_key, payload, received_at)
    SELECT i.id, i.route, i.format, i.event, i.key, i.payload::jsonb, $9
    FROM input i JOIN k ON k.key = i.key AND k.notification_id = i.id
    RETURNING id
), dl AS (
    INSERT INTO deliveries (operation_id, notification_id, route, conversation, recipient, subject,
                            importance, group_key, status, part, parts, text, next_attempt_at,
                            created_at, queued_at, updated_at)
    SELECT m.op, n.id, i.route, m.conv, m.rcpt, m.subj, m.imp, m.gk, m.st, m.part, m.parts, m.txt, $9, $9, $9, $9
    FROM unnest($10::int[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                $17::text[], $18::int[], $20::int[], $21::text[])
         WITH ORDINALITY AS m(nidx, op, conv, rcpt, subj, imp, gk, st, part, parts, txt, ord)
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
    INSERT INTO notifications (id, route, format, event, dedup_key, payload, received_at)
    SELECT $2, $5, $6, $7, $1, $8::text::jsonb, $9 FROM k WHERE k.notification_id = $2
    RETURNING id
), dl AS (
    INSERT INTO deliveries (operation_id, notification_id, route, conversation, recipient, subject,
                            importance, group_key, status, part, parts, text, next_attempt_at,
                            created_at, queued_at, updated_at)
    SELECT m.op, n.id, $5, m.conv, m.rcpt, m.subj, m.imp, m.gk, m.st, m.part, m.parts, m.txt, $9, $9, $9, $9
    FROM unnest($3::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                $16::int[], $17::int[], $18::text[])
         WITH ORDINALITY AS m(op, conv, rcpt, subj, imp, gk, st, part, parts, txt, ord)
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
		m.convs, m.rcpts, m.subjs, m.imps, m.gks, m.sts, m.parts, m.counts, m.txts).Scan(&res.NotificationID, &res.OperationIDs)
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
	txts                                []string
}

// add appends msgs, the messages of the notification numbered nidx in the
// batch.
func (c *messageColumns) add(msgs []NewMessage, nidx int) {
	for _, m := range msgs {
		imp := m.Target.Importance
		if imp == "" {
			imp = "Normal"
		}
		c.nidx = append(c.nidx, int32(nidx))
		c.convs, c.rcpts, c.subjs = append(c.convs, m.Conversation), append(c.rcpts, m.Target.To), append(c.subjs, m.Target.Subject)
		c.imps, c.gks, c.sts, c.txts = append(c.imps, imp), append(c.gks, m.GroupKey), append(c.sts, m.Status), append(c.txts, m.Text)
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
		keys, ids, opids, routes, formats, events, payloads []string
		expires                                             []time.Time
		twins, ops                                          []string
		m                                                   messageColumns
		now                                                 time.Time
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
			append(events, n.Event), append(payloads, string(n.Payload))
		ops = append(ops, it.opIDs...)
		m.add(n.Messages, len(keys))
	}
	rows, _ := db.pool.Query(ctx, enqueueSQL, keys, ids, opids, expires, routes, formats, events, payloads, now,
		m.nidx, ops, m.convs, m.rcpts, m.subjs, m.imps, m.gks, m.sts, m.parts, twins, m.counts, m.txts)
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
