package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	db, err := store.Open(context.Background(), url, store.Options{Now: func() time.Time {
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

// TestCheckJSONBAgreesWithPostgreSQL puts payloads to PostgreSQL itself:
// what the store refuses up front is exactly what jsonb refuses, and
// Enqueue refuses it as bad input without writing anything.
func TestCheckJSONBAgreesWithPostgreSQL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, tt := range []struct {
		payload string
		refuse  bool
	}{
		{`{"a":"plain é 🙈"}`, false},
		{`{"a":"\u00e9\ud83d\ude48\u2028"}`, false},
		{`{"a":"\\u0000 is text here"}`, false},
		{`{"a\\":"\\\\"}`, false},
		{`{"a":"\u0000"}`, true},
		{`{"\u0000":1}`, true},
		{`{"a":"x\ud800"}`, true},
		{`{"a":"\ud800x"}`, true},
		{`{"a":"\ud800\u0041"}`, true},
		{`{"a":"\udc00"}`, true},
		{`{"a":"\ude48\ud83d"}`, true},
		{"{\"a\":\"\xff\"}", true},
		// Numbers: jsonb holds them as numeric, with limits of its own.
		{`[1e131071, 9.99e131071, 0.1e131072, 0.00001e131076, -1e131071]`, false},
		{`[1e-16383, 0e-16383, 0e999999, 0e1073741822, 1e00000000000000000000001, 12.50]`, false},
		{`{"n":"1e131072", "1e131072":[0], "e":"\"1e131072"}`, false},
		{`[1e131072]`, true},
		{`{"a":{"b":[1, -1e131072]}}`, true},
		{`[10e131071]`, true},
		{`[0.00001e131077]`, true},
		{`[1e-16384]`, true},
		{`[1.0e-16383]`, true},
		{`[0e-16384]`, true},
		{`[0e1073741823]`, true},
		{`[1e-131072]`, true},
		{`[1E+999999999999999999999]`, true},
	} {
		_, pgErr := b.db.Pool().Exec(ctx, `SELECT $1::text::jsonb`, tt.payload)
		if (pgErr != nil) != tt.refuse {
			t.Fatalf("test case wrong: PostgreSQL on %q: %v, want refused %v", tt.payload, pgErr, tt.refuse)
		}
		err := store.CheckJSONB([]byte(tt.payload))
		if (err != nil) != tt.refuse {
			t.Errorf("CheckJSONB(%q) = %v, PostgreSQL: %v", tt.payload, err, pgErr)
		}
		if !tt.refuse {
			continue
		}
		n := notification("bad-"+tt.payload, "oncall")
		n.Payload = []byte(tt.payload)
		if _, err := b.db.Enqueue(ctx, n); !errors.Is(err, relay.ErrInvalid) {
			t.Errorf("Enqueue(%q) = %v, want relay.ErrInvalid", tt.payload, err)
		}
	}
	list, _, err := b.db.ListDeliveries(ctx, store.ListFilter{})
	if err != nil || len(list) != 0 {
		t.Errorf("refused payloads left %d deliveries (%v)", len(list), err)
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
