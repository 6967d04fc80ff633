package store_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

// TestGroupCommitCapsBytes queues notifications of 100 kB each behind a
// held write, with batches capped at 250 kB: they go out two by two, and
// every one is stored.
func TestGroupCommitCapsBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	var writes []int
	db, err := store.Open(ctx, relaytest.NewDatabase(t), store.Options{
		Committers: 1, OpTimeout: time.Minute, BatchMaxBytes: 250_000,
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
	// The first write waits for a lock, so the others queue behind it.
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, `LOCK TABLE dedup_keys IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	big := func(key string) *store.NewNotification {
		n := notification(key, "oncall")
		n.Payload = []byte(`{"pad":"` + strings.Repeat("x", 100_000-10) + `"}`)
		return n
	}
	const queued = 7
	errs := make([]error, queued+1)
	var wg sync.WaitGroup
	wg.Go(func() { _, errs[0] = db.Enqueue(ctx, big("first")) })
	store.WaitFor(t, "the first write to wait for the lock", func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n == 1
	})
	for i := 1; i <= queued; i++ {
		wg.Go(func() { _, errs[i] = db.Enqueue(ctx, big("k"+string(rune('a'+i)))) })
	}
	store.WaitFor(t, "the others to queue", func() bool { return db.QueuedEnqueues() == queued })
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("Enqueue %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{1, 2, 2, 2, 1}; !slices.Equal(writes, want) {
		t.Errorf("requests per write = %v, want %v", writes, want)
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != queued+1 {
		t.Errorf("%d notifications stored, want %d", stored, queued+1)
	}
}
