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
	claimed, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
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
	if finish(by[ids[3]], 5, relay.StatePending, false, 1) {
		t.Error("an on-time finish of another generation was recorded")
	}
	if !finish(by[ids[3]], 5, relay.StatePending, true, 1) {
		t.Error("a late finish of a delivery nobody took over was not recorded")
	}
	// Generation 2 takes over ben's delivery (his lease is treated as lost).
	taken, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 2, Takeover: true})
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
	if benAgain.Unconfirmed != 1 || !benAgain.Resend {
		t.Errorf("reclaimed with unconfirmed %d, resend %v; want the reclaim counted and marked", benAgain.Unconfirmed, benAgain.Resend)
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
	again, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 2, Takeover: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again {
		if c.OperationID == ids[0] && c.Unconfirmed != 1 {
			t.Errorf("claimed ann's delivery with unconfirmed %d, want 1", c.Unconfirmed)
		}
	}
}

// TestReclaimCountsSurviveRelease: a reclaim is counted as an unconfirmed
// send by the claim itself, so giving the claim back keeps the count and
// the mark; and claims whose answer was lost are given back by token.
func TestReclaimCountsSurviveRelease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := enqueue(t, b, "rel", "g", "firing", "eve", "fay")
	if _, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Token: "t1"}); err != nil {
		t.Fatal(err)
	}
	// Without takeover a newer generation leaves live claims alone.
	none, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 2, Token: "t2"})
	if err != nil || len(none) != 0 {
		t.Fatalf("claim without takeover = %+v, %v; want nothing while generation 1's leases run", none, err)
	}
	taken, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 2, Token: "t3", Takeover: true})
	if err != nil || len(taken) != 2 {
		t.Fatalf("takeover = %d, %v", len(taken), err)
	}
	var eve store.Claimed
	for _, c := range taken {
		if c.OperationID == ids[0] {
			eve = c
		}
	}
	if err := b.db.Release(ctx, eve); err != nil {
		t.Fatal(err)
	}
	again, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 2, Token: "t4"})
	if err != nil || len(again) != 1 || again[0].OperationID != ids[0] {
		t.Fatalf("claim after release = %+v, %v", again, err)
	}
	if c := again[0]; c.Reclaimed || c.Unconfirmed != 1 || !c.Resend || c.Attempt != 2 {
		t.Errorf("after a released reclaim: reclaimed %v, unconfirmed %d, resend %v, attempt %d; want the reclaim still counted and marked, attempt 2",
			c.Reclaimed, c.Unconfirmed, c.Resend, c.Attempt)
	}
	// fay's claim of token t3 "lost its answer": given back, not counted.
	n, err := b.db.ReleaseClaims(ctx, []string{"t3", "unknown"})
	if err != nil || n != 1 {
		t.Fatalf("ReleaseClaims = %d, %v; want fay's delivery given back", n, err)
	}
	d, err := b.db.GetDelivery(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if d.State != relay.StatePending || d.Attempts != 1 {
		t.Errorf("fay's delivery after ReleaseClaims: %s, %d attempts; want pending with the lost claim undone", d.State, d.Attempts)
	}
}

// TestDeliveredDoesNotUndoRedelivery: a delivered outcome wins over later
// claims, but not over an operator's redelivery made since.
func TestDeliveredDoesNotUndoRedelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := enqueue(t, b, "redeliver", "g", "firing", "gus")
	c, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 1})
	if err != nil || len(c) != 1 {
		t.Fatalf("claim = %v, %v", c, err)
	}
	dead := store.Finish{OperationID: ids[0], Attempt: 1, Gen: 1, State: relay.StateDead, Now: *b.now, QueuedAt: c[0].QueuedAt}
	if res, err := b.db.Finish(ctx, dead); err != nil || !res.Recorded {
		t.Fatalf("finish dead = %+v, %v", res, err)
	}
	b.advance(time.Minute)
	if _, err := b.db.Redeliver(ctx, ids[0], store.RedeliverRequest{By: "test", Via: store.ViaAPI, Now: *b.now}); err != nil {
		t.Fatal(err)
	}
	late := store.Finish{OperationID: ids[0], Attempt: 1, Gen: 1, State: relay.StateDelivered, Now: *b.now,
		QueuedAt: c[0].QueuedAt, Late: true}
	if res, err := b.db.Finish(ctx, late); err != nil || res.Recorded {
		t.Errorf("a stale delivered outcome after a redelivery = %+v, %v; want it fenced out", res, err)
	}
}

// TestFinishCleansServerText: error codes and messages come from the UCWA
// server; a NUL or invalid UTF-8 in them must not make PostgreSQL refuse
// the outcome.
func TestFinishCleansServerText(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := enqueue(t, b, "nul", "g", "firing", "hal")
	c, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 1})
	if err != nil || len(c) != 1 {
		t.Fatalf("claim = %v, %v", c, err)
	}
	res, err := b.db.Finish(ctx, store.Finish{OperationID: ids[0], Attempt: 1, Gen: 1, State: relay.StatePending,
		NextAttemptAt: b.now.Add(time.Minute), LastError: "message_failed: Remote\x00Failure \xff", Now: *b.now,
		Record: &store.AttemptRecord{UCWAOperationID: ids[0] + ".1", Outcome: "retry", Code: "Remote\x00Failure",
			Subcode: "Bad\xffUTF8", Error: "x\x00y", StartedAt: *b.now, FinishedAt: *b.now}})
	if err != nil || !res.Recorded {
		t.Fatalf("Finish with NUL and invalid UTF-8 = %+v, %v; want recorded", res, err)
	}
	d, err := b.db.GetDelivery(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(d.AttemptLog) != 1 || d.AttemptLog[0].UCWACode != "RemoteFailure" || d.AttemptLog[0].UCWASubcode != "Bad\uFFFDUTF8" {
		t.Errorf("attempt log %+v, want the server's text cleaned", d.AttemptLog)
	}
}
