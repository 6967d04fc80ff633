package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// TestLateFinish covers outcomes written after the database was away: a
// claim of an older session generation is still recorded when nobody took
// the delivery over, a delivered outcome wins over a takeover, and anything
// else loses to it.
func TestLateFinish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := enqueue(t, b, "late", "g", "firing", "ann", "ben", "cid", "dan")
	claimed, err := b.db.Claim(ctx, *b.now, 10, time.Minute, 1)
	if err != nil || len(claimed) != 4 {
		t.Fatalf("claim = %d, %v", len(claimed), err)
	}
	by := map[string]store.Claimed{}
	for _, c := range claimed {
		by[c.OperationID] = c
	}
	finish := func(c store.Claimed, gen int64, st relay.State, late bool, unconfirmed int) bool {
		t.Helper()
		res, err := b.db.Finish(ctx, store.Finish{OperationID: c.OperationID, Attempt: c.Attempt, Gen: gen, State: st,
			NextAttemptAt: b.now.Add(time.Second), Unconfirmed: unconfirmed, Resend: unconfirmed > 0, Late: late, Now: *b.now,
			Record: &store.AttemptRecord{UCWAOperationID: c.OperationID + ".x", Outcome: "x", StartedAt: *b.now, FinishedAt: *b.now}})
		if err != nil {
			t.Fatalf("Finish(%s): %v", c.OperationID, err)
		}
		return res.Recorded
	}

	// ann's outcome is recorded on time, counting one unconfirmed send.
	if !finish(by[ids[0]], 1, relay.StatePending, false, 1) {
		t.Fatal("on-time finish of the current claim not recorded")
	}
	// dan's outcome comes after the lease was lost (the finish names a
	// generation that no longer matches) but before anyone took the
	// delivery over: fenced out on time, recorded late.
	if finish(by[ids[3]], 5, relay.StateDelivered, false, 0) {
		t.Error("an on-time finish of another generation was recorded")
	}
	if !finish(by[ids[3]], 5, relay.StateDelivered, true, 0) {
		t.Error("a late finish of a delivery nobody took over was not recorded")
	}
	// Generation 2 takes over ben's delivery (his lease is treated as lost).
	taken, err := b.db.Claim(ctx, *b.now, 10, time.Minute, 2)
	if err != nil {
		t.Fatal(err)
	}
	var benAgain *store.Claimed
	for i := range taken {
		if taken[i].OperationID == ids[1] {
			benAgain = &taken[i]
		}
	}
	if benAgain == nil || !benAgain.Reclaimed {
		t.Fatalf("generation 2 did not reclaim ben's delivery: %+v", taken)
	}
	// Generation 2 took cid's delivery over as well: a late outcome other
	// than delivered loses to the newer claim.
	if finish(by[ids[2]], 1, relay.StatePending, true, 1) {
		t.Error("a late non-delivered outcome overwrote a newer claim")
	}
	// ben's late outcome says delivered: it wins over the takeover, and the
	// takeover's own finish is then fenced out.
	if !finish(by[ids[1]], 1, relay.StateDelivered, true, 0) {
		t.Fatal("a late delivered outcome lost to a takeover: the delivery would be resent")
	}
	if finish(*benAgain, 2, relay.StateDelivered, false, 1) {
		t.Error("the takeover's finish was recorded over the delivered outcome")
	}
	d, err := b.db.GetDelivery(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if d.State != relay.StateDelivered || len(d.AttemptLog) != 2 {
		t.Errorf("ben's delivery: %s with %d attempts recorded, want delivered with both attempts in the audit", d.State, len(d.AttemptLog))
	}
	ann, err := b.db.GetDelivery(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if ann.Unconfirmed != 1 {
		t.Errorf("ann's unconfirmed = %d, want 1", ann.Unconfirmed)
	}
	// The unconfirmed count comes back with the next claim, and a
	// redelivery starts it over.
	b.advance(2 * time.Second)
	again, err := b.db.Claim(ctx, *b.now, 10, time.Minute, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again {
		if c.OperationID == ids[0] && c.Unconfirmed != 1 {
			t.Errorf("claimed ann's delivery with unconfirmed %d, want 1", c.Unconfirmed)
		}
	}
}
