package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

type testBundle struct {
	db  *store.DB
	now *time.Time
	mu  *sync.Mutex
}

func setup(t *testing.T) testBundle {
	t.Helper()
	url := relaytest.NewDatabase(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	mu := &sync.Mutex{}
	// OpTimeout is generous: these tests are not about it, and a loaded
	// machine must not fail them.
	db, err := store.Open(context.Background(), url, store.Options{OpTimeout: 30 * time.Second, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(db.Close)
	return testBundle{db: db, now: &now, mu: mu}
}

func (b testBundle) advance(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*b.now = b.now.Add(d)
}

func notification(key string, convs ...string) *store.NewNotification {
	n := &store.NewNotification{
		Route: "prod", Format: "alertmanager", DedupKey: key, Window: 15 * time.Minute,
		Payload: []byte(`{"version":"4"}`),
	}
	for _, c := range convs {
		n.Messages = append(n.Messages, store.NewMessage{
			Conversation: c, Target: relay.Target{To: "sip:" + c + "@contoso.com"}, Text: "hello " + c,
		})
	}
	return n
}

func TestEnqueueCreatesOneDeliveryPerConversation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	res, err := b.db.Enqueue(ctx, notification("k1", "oncall", "dba"))
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if res.Duplicate || len(res.OperationIDs) != 2 {
		t.Fatalf("Enqueue = %+v, want 2 new operation ids", res)
	}
	for i, id := range res.OperationIDs {
		if len(id) > 50 {
			t.Errorf("operation id %q is %d characters, UCWA allows 50", id, len(id))
		}
		d, err := b.db.GetDelivery(ctx, id)
		if err != nil {
			t.Fatalf("GetDelivery(%q): %v", id, err)
		}
		want := []string{"oncall", "dba"}[i]
		if d.Conversation != want || d.State != relay.StatePending || d.Text != "hello "+want || d.Duplicates != 0 {
			t.Errorf("GetDelivery(%q) = %+v, want pending delivery to %s", id, d.Delivery, want)
		}
	}
}

// TestEnqueueDeduplicatesInsideWindowOnly runs through both statements:
// the one for a lone notification and the batch one (the notification
// shares its commit with another).
func TestEnqueueDeduplicatesInsideWindowOnly(t *testing.T) {
	t.Parallel()
	for _, batched := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "batched"}[batched], func(t *testing.T) {
			t.Parallel()
			testDedupWindow(t, batched)
		})
	}
}

func testDedupWindow(t *testing.T, batched bool) {
	b := setup(t)
	ctx := context.Background()
	fillers := 0
	enqueue := func(ctx context.Context, n *store.NewNotification) (store.EnqueueResult, error) {
		if !batched {
			return b.db.Enqueue(ctx, n)
		}
		fillers++
		res, _, err := b.db.EnqueueBatch([]*store.NewNotification{n, notification(fmt.Sprint("filler-", fillers), "dba")}, *b.now)
		if err != nil {
			return store.EnqueueResult{}, err
		}
		return res[0], nil
	}

	first, err := enqueue(ctx, notification("same", "oncall"))
	if err != nil {
		t.Fatal(err)
	}
	b.advance(10 * time.Minute)
	retry, err := enqueue(ctx, notification("same", "oncall"))
	if err != nil {
		t.Fatal(err)
	}
	if !retry.Duplicate || !cmp.Equal(retry.OperationIDs, first.OperationIDs) {
		t.Fatalf("retry inside window = %+v, want duplicate of %v", retry, first.OperationIDs)
	}
	d, err := b.db.GetDelivery(ctx, first.OperationIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.Duplicates != 1 || len(d.DuplicatesAt) != 1 || !d.DuplicatesAt[0].Equal(*b.now) {
		t.Errorf("duplicates = %d at %v, want 1 at %v", d.Duplicates, d.DuplicatesAt, *b.now)
	}

	b.advance(6 * time.Minute) // 16 minutes after the first: a repeat reminder
	reminder, err := enqueue(ctx, notification("same", "oncall"))
	if err != nil {
		t.Fatal(err)
	}
	if reminder.Duplicate || cmp.Equal(reminder.OperationIDs, first.OperationIDs) {
		t.Fatalf("after window = %+v, want a new delivery", reminder)
	}
	list, _, err := b.db.ListDeliveries(ctx, store.ListFilter{Conversation: "oncall"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("ListDeliveries returned %d deliveries to oncall, want 2", len(list))
	}
}

func TestEnqueueConcurrentTwinsMakeOneDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	const twins = 16
	results := make([]store.EnqueueResult, twins)
	errs := make([]error, twins)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range twins {
		wg.Go(func() {
			<-start
			results[i], errs[i] = b.db.Enqueue(ctx, notification("twin", "oncall"))
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range twins {
		if errs[i] != nil {
			t.Fatalf("Enqueue %d: %v", i, errs[i])
		}
		if !results[i].Duplicate {
			created++
		}
		if !cmp.Equal(results[i].OperationIDs, results[0].OperationIDs) {
			t.Errorf("twin %d got ids %v, twin 0 got %v", i, results[i].OperationIDs, results[0].OperationIDs)
		}
	}
	if created != 1 {
		t.Errorf("%d twins created a delivery, want exactly 1", created)
	}
	list, _, err := b.db.ListDeliveries(ctx, store.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Errorf("%d deliveries stored, want 1", len(list))
	}
	d, err := b.db.GetDelivery(ctx, results[0].OperationIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.Duplicates != twins-1 {
		t.Errorf("duplicates = %d, want %d", d.Duplicates, twins-1)
	}
}

// TestTwinsInOneGroupCommit: twins inside one group commit make one
// notification; the others are duplicates with the same ids, counted.
func TestTwinsInOneGroupCommit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ns := []*store.NewNotification{notification("twin", "a"), notification("other", "a"), notification("twin", "a"), notification("twin", "a")}
	res, ids, err := b.db.EnqueueBatch(ns, *b.now)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate || !res[3].Duplicate {
		t.Fatalf("duplicate flags = %v %v %v %v, want false false true true", res[0].Duplicate, res[1].Duplicate, res[2].Duplicate, res[3].Duplicate)
	}
	if res[2].NotificationID != ids[0] || res[3].NotificationID != ids[0] || !cmp.Equal(res[3].OperationIDs, res[0].OperationIDs) {
		t.Errorf("twins got %+v and %+v, want the first twin's ids", res[2], res[3])
	}
	d, err := b.db.GetDelivery(context.Background(), res[0].OperationIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.Duplicates != 2 {
		t.Errorf("duplicates = %d, want 2", d.Duplicates)
	}
	list, _, _ := b.db.ListDeliveries(context.Background(), store.ListFilter{})
	if len(list) != 2 {
		t.Errorf("%d deliveries stored, want 2", len(list))
	}
}

// TestPayloadStoredByteForByte: the body is kept exactly as received, also
// what jsonb would have changed (key order, duplicate keys, whitespace) or
// refused (the escape \u0000, lone surrogates, numbers beyond numeric), and
// the audit returns those very bytes. Only a body that is not UTF-8 is
// refused, as bad input, and nothing of it is written.
func TestPayloadStoredByteForByte(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for i, payload := range []string{
		`{"b":1,"a":2,"b":3}`,
		"{\n  \"z\" : [ 1.50 , 2e0 ]\n}",
		`{"a":"plain é 🙈 \u00e9\ud83d\ude48\u2028"}`,
		`{"a":"\u0000","\u0000":1}`,
		`{"a":"x\ud800","b":"\udc00"}`,
		`[1e131072, 1e-131072, 1E+999999999999999999999]`,
	} {
		n := notification("raw-"+strconv.Itoa(i), "oncall")
		n.Payload = []byte(payload)
		res, err := b.db.Enqueue(ctx, n)
		if err != nil {
			t.Fatalf("Enqueue(%q): %v", payload, err)
		}
		d, err := b.db.GetDelivery(ctx, res.OperationIDs[0])
		if err != nil {
			t.Fatal(err)
		}
		if string(d.Payload) != payload {
			t.Errorf("payload stored as %q, want %q byte for byte", d.Payload, payload)
		}
	}
	n := notification("not-utf8", "oncall")
	n.Payload = []byte("{\"a\":\"\xff\"}")
	if _, err := b.db.Enqueue(ctx, n); !errors.Is(err, relay.ErrInvalid) {
		t.Errorf("Enqueue(invalid UTF-8) = %v, want relay.ErrInvalid", err)
	}
	list, _, err := b.db.ListDeliveries(ctx, store.ListFilter{})
	if err != nil || len(list) != 6 {
		t.Errorf("%d deliveries stored (%v), want 6: the refused body left something", len(list), err)
	}
}

// TestGroupCommitWithABugWritesTheOthers: a request of a group commit that
// PostgreSQL refuses for a reason no retry cures (here a constraint the
// store does not know of) fails alone, as an internal error, and the other
// requests of its batch are written.
func TestGroupCommitWithABugWritesTheOthers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	var writes []int
	db, err := store.Open(ctx, relaytest.NewDatabase(t), store.Options{
		Committers: 1, OpTimeout: time.Minute,
		OnIngestCommit: func(requests int, _ time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			writes = append(writes, requests)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	pool := db.Pool()
	if _, err := pool.Exec(ctx, `ALTER TABLE notifications ADD CONSTRAINT injected_bug CHECK (dedup_key <> 'bug')`); err != nil {
		t.Fatal(err)
	}
	// The first write waits for a lock, so the others queue behind it and
	// then go out together.
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, `LOCK TABLE dedup_keys IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	keys := []string{"first", "a", "bug", "b", "c"}
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	wg.Go(func() { _, errs[0] = db.Enqueue(ctx, notification(keys[0], "oncall")) })
	store.WaitFor(t, "the first write to wait for the lock", func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n == 1
	})
	for i := 1; i < len(keys); i++ {
		wg.Go(func() { _, errs[i] = db.Enqueue(ctx, notification(keys[i], "oncall")) })
	}
	store.WaitFor(t, "the others to queue", func() bool { return db.QueuedEnqueues() == len(keys)-1 })
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for i, key := range keys {
		switch {
		case key == "bug":
			if !errors.Is(errs[i], relay.ErrInternal) || errors.Is(errs[i], relay.ErrUnavailable) {
				t.Errorf("Enqueue(%s) = %v, want an internal error", key, errs[i])
			}
		case errs[i] != nil:
			t.Errorf("Enqueue(%s) = %v, want it written", key, errs[i])
		}
	}
	mu.Lock()
	if !slices.Contains(writes, len(keys)-1) {
		t.Errorf("writes of %v requests, want one of %d: the test did not form the batch it is about", writes, len(keys)-1)
	}
	mu.Unlock()
	rows, _ := pool.Query(ctx, `SELECT dedup_key FROM notifications ORDER BY dedup_key`)
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c", "first"}; !cmp.Equal(stored, want) {
		t.Errorf("notifications stored: %v, want %v", stored, want)
	}
}
