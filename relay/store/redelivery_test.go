package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// finishDead claims the recipient's head and ends it dead.
func finishDead(t *testing.T, b testBundle, attempt int) {
	t.Helper()
	ctx := context.Background()
	c, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if err != nil || len(c) != 1 {
		t.Fatalf("Claim = %+v, %v; want one delivery", c, err)
	}
	if _, err := b.db.Finish(ctx, store.Finish{OperationID: c[0].OperationID, Attempt: attempt, Gen: 1, State: relay.StateDead,
		LastError: "declined", Now: *b.now}); err != nil {
		t.Fatal(err)
	}
}

func TestRedeliverRecordsWhoAsked(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := enqueue(t, b, "k1", "g1", "firing", "alice")
	finishDead(t, b, 1)
	req := store.RedeliverRequest{By: "anna", Via: store.ViaConsole, Key: "k-1", Window: time.Minute, Now: *b.now}
	first, err := b.db.Redeliver(ctx, ids[0], req)
	if err != nil || first.Replayed || first.PreviousState != relay.StateDead {
		t.Fatalf("Redeliver = %+v, %v; want a new redelivery from dead", first, err)
	}
	// The same key again, even after the delivery finished: the first
	// record, and nothing queued.
	finishDead(t, b, 2)
	b.advance(time.Hour)
	again, err := b.db.Redeliver(ctx, ids[0], store.RedeliverRequest{By: "ben", Via: store.ViaAPI, Key: "k-1", Now: *b.now})
	if err != nil || !again.Replayed || again.RequestedBy != "anna" || !again.RequestedAt.Equal(first.RequestedAt) {
		t.Fatalf("Redeliver with the same key = %+v, %v; want anna's record replayed", again, err)
	}
	d, err := b.db.GetDelivery(ctx, ids[0])
	if err != nil || d.State != relay.StateDead {
		t.Fatalf("after a replay: %+v, %v; want still dead", d, err)
	}
	if len(d.Redeliveries) != 1 || d.Redeliveries[0].RequestedBy != "anna" || d.Redeliveries[0].Via != store.ViaConsole {
		t.Errorf("Redeliveries = %+v, want anna's only", d.Redeliveries)
	}
}

func TestRedeliverWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := enqueue(t, b, "k1", "g1", "firing", "alice")
	finishDead(t, b, 1)
	req := func() store.RedeliverRequest {
		return store.RedeliverRequest{By: "api-token", Via: store.ViaAPI, Window: time.Minute, Now: *b.now}
	}
	if _, err := b.db.Redeliver(ctx, ids[0], req()); err != nil {
		t.Fatal(err)
	}
	_, err := b.db.Redeliver(ctx, ids[0], req())
	if !errors.Is(err, relay.ErrConflict) || !strings.Contains(err.Error(), "already queued (redelivered at 2026-11-27T12:00:00Z by api-token (api))") {
		t.Errorf("Redeliver while queued = %v, want a conflict naming the first", err)
	}
	finishDead(t, b, 2)
	b.advance(59 * time.Second)
	_, err = b.db.Redeliver(ctx, ids[0], req())
	if !errors.Is(err, relay.ErrConflict) || !strings.Contains(err.Error(), "less than 1m0s ago") {
		t.Errorf("Redeliver 59s later = %v, want a conflict", err)
	}
	// A key says "I mean it": not bound by the window.
	keyed := req()
	keyed.Key = "again"
	if _, err := b.db.Redeliver(ctx, ids[0], keyed); err != nil {
		t.Errorf("Redeliver with a key 59s later = %v, want it queued", err)
	}
	finishDead(t, b, 3)
	b.advance(time.Minute)
	if _, err := b.db.Redeliver(ctx, ids[0], req()); err != nil {
		t.Errorf("Redeliver a minute later = %v, want it queued", err)
	}
}

// TestRedeliverConcurrently: of 30 simultaneous redeliveries of one
// finished delivery, exactly one queues it, keyed or not.
func TestRedeliverConcurrently(t *testing.T) {
	t.Parallel()
	for _, keyed := range []bool{false, true} {
		b := setup(t)
		ctx := context.Background()
		ids := enqueue(t, b, "k1", "g1", "firing", "alice")
		finishDead(t, b, 1)
		var wg sync.WaitGroup
		var mu sync.Mutex
		queued, replayed, conflicts := 0, 0, 0
		for range 30 {
			wg.Go(func() {
				r := store.RedeliverRequest{By: "api-token", Via: store.ViaAPI, Window: time.Minute, Now: *b.now}
				if keyed {
					r.Key = "same"
				}
				got, err := b.db.Redeliver(ctx, ids[0], r)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && got.Replayed:
					replayed++
				case err == nil:
					queued++
				case errors.Is(err, relay.ErrConflict):
					conflicts++
				default:
					t.Errorf("Redeliver: %v", err)
				}
			})
		}
		wg.Wait()
		if queued != 1 || replayed+conflicts != 29 || (keyed && replayed != 29) {
			t.Errorf("keyed=%v: %d queued, %d replayed, %d refused; want 1 queued", keyed, queued, replayed, conflicts)
		}
	}
}
