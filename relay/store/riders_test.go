package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// TestClaimRidersTakesTheLineInOrder: the riders are the head's immediate
// followers for its recipient, claimed in queue order across pages, the
// run ends at the first one take refuses, and nothing of another
// recipient rides.
func TestClaimRidersTakesTheLineInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var alice []string
	for i := range 10 {
		ids := enqueue(t, b, fmt.Sprintf("k%d", i), fmt.Sprintf("g%d", i), "firing", "alice", "bob")
		alice = append(alice, ids[0])
	}
	heads, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Token: "heads", Takeover: true, Lookahead: 20})
	if err != nil || len(heads) != 2 {
		t.Fatalf("claim = %v, %v; want alice's and bob's heads", heads, err)
	}
	head := heads[0]
	if head.Target.To != "sip:alice@contoso.com" {
		head = heads[1]
	}
	if head.OperationID != alice[0] || head.Behind != 9 {
		t.Fatalf("alice's head = %s with %d behind, want %s with 9", head.OperationID, head.Behind, alice[0])
	}
	for _, h := range heads {
		if h.Target.To == "sip:bob@contoso.com" && h.Behind != 9 {
			t.Errorf("bob's head has %d behind, want 9 (alice's are not his)", h.Behind)
		}
	}

	var offered []string
	riders, err := b.db.ClaimRiders(ctx, head, store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "riders", Page: 3},
		func(r store.Rider) bool {
			offered = append(offered, r.OperationID)
			if !r.Due || r.Target.To != head.Target.To {
				t.Errorf("offered %s (due %v, to %s), want alice's due deliveries only", r.OperationID, r.Due, r.Target.To)
			}
			return len(offered) <= 6 // the seventh is refused
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(offered) != 7 || len(riders) != 6 {
		t.Fatalf("offered %d, claimed %d; want 7 offered over three pages, 6 claimed", len(offered), len(riders))
	}
	for i, r := range riders {
		if r.OperationID != alice[i+1] || r.Attempt != 1 || r.Gen != 1 {
			t.Errorf("rider %d = %s attempt %d gen %d, want %s attempt 1 gen 1", i, r.OperationID, r.Attempt, r.Gen, alice[i+1])
		}
	}
	if n := count(t, b, "deliveries", "state = 'sending' AND claim_token = 'riders'"); n != 6 {
		t.Errorf("%d deliveries claimed under the riders' token, want 6", n)
	}

	// The head finishes with its riders in one transaction: the claim of
	// alice's next delivery sees them finished and takes the one after.
	f := store.Finish{OperationID: head.OperationID, Attempt: head.Attempt, Gen: 1, State: relay.StateDelivered, Now: *b.now,
		Record:    &store.AttemptRecord{UCWAOperationID: head.OperationID + ".1", Outcome: "delivered", Carried: 6, StartedAt: *b.now, FinishedAt: *b.now},
		ClaimNext: &store.NextClaim{Recipient: head.Target.To, Lease: time.Minute, Lookahead: 3}}
	for _, r := range riders {
		f.Carried = append(f.Carried, store.Finish{OperationID: r.OperationID, Attempt: r.Attempt, Gen: 1, State: relay.StateDelivered,
			Now: *b.now, Record: &store.AttemptRecord{UCWAOperationID: head.OperationID + ".1", Outcome: "delivered",
				CarriedBy: head.OperationID, StartedAt: *b.now, FinishedAt: *b.now}})
	}
	res, err := b.db.Finish(ctx, f)
	if err != nil || !res.Recorded || len(res.CarriedRecorded) != 6 {
		t.Fatalf("Finish = %+v, %v; want recorded with 6 carried", res, err)
	}
	for i, ok := range res.CarriedRecorded {
		if !ok {
			t.Errorf("carried %d not recorded", i)
		}
	}
	if res.Next == nil || res.Next.OperationID != alice[7] || res.Next.Behind != 2 {
		t.Fatalf("next = %+v, want %s with 2 behind", res.Next, alice[7])
	}
	d, err := b.db.GetDelivery(ctx, alice[3])
	if err != nil {
		t.Fatal(err)
	}
	if d.State != relay.StateDelivered || len(d.AttemptLog) != 1 || d.AttemptLog[0].CarriedBy != head.OperationID ||
		d.AttemptLog[0].UCWAOperationID != head.OperationID+".1" {
		t.Errorf("carried delivery = %s with attempts %+v, want delivered, carried by %s", d.State, d.AttemptLog, head.OperationID)
	}
	h, err := b.db.GetDelivery(ctx, head.OperationID)
	if err != nil || len(h.AttemptLog) != 1 || h.AttemptLog[0].Carried != 6 || h.AttemptLog[0].CarriedBy != "" {
		t.Errorf("head's attempts = %+v, %v; want one that carried 6", h.AttemptLog, err)
	}
}

// TestClaimRidersStopsAtARiderNotDue: a rider waiting for a retry ends the
// run even when take accepts everything, so no delivery overtakes another
// and none is sent before its time.
func TestClaimRidersStopsAtARiderNotDue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		ids = append(ids, enqueue(t, b, fmt.Sprintf("k%d", i), "g", "firing", "alice")[0])
	}
	if _, err := b.db.Pool().Exec(ctx, `UPDATE deliveries SET next_attempt_at = $2 WHERE operation_id = $1`,
		ids[3], b.now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	heads, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 1, Takeover: true, Lookahead: 2})
	if err != nil || len(heads) != 1 || heads[0].Behind != 2 {
		t.Fatalf("claim = %+v, %v; want one head, counting 2 behind (the lookahead, of 4)", heads, err)
	}
	riders, err := b.db.ClaimRiders(ctx, heads[0], store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "r"},
		func(store.Rider) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if len(riders) != 2 || riders[0].OperationID != ids[1] || riders[1].OperationID != ids[2] {
		t.Fatalf("riders = %+v, want %s and %s (the next is not due)", riders, ids[1], ids[2])
	}
	// A lost answer: ReleaseClaims gives the riders back untouched.
	if n, err := b.db.ReleaseClaims(ctx, []string{"r"}); err != nil || n != 2 {
		t.Fatalf("ReleaseClaims = %d, %v; want 2", n, err)
	}
	if n := count(t, b, "deliveries", "state = 'pending' AND attempts = 0"); n != 4 {
		t.Errorf("%d deliveries pending and never tried, want 4", n)
	}
}

// TestClaimRidersNeedsTheHeadsClaim: once the head was taken over (a newer
// session generation claimed it), the old claim's riders are not claimed.
func TestClaimRidersNeedsTheHeadsClaim(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	old := lineOfFour(t, b)
	// Generation 2 takes the head over.
	taken, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 2, Takeover: true})
	if err != nil || len(taken) != 1 || taken[0].OperationID != old.OperationID || !taken[0].Reclaimed {
		t.Fatalf("takeover = %+v, %v; want the head, reclaimed", taken, err)
	}
	riders, err := b.db.ClaimRiders(ctx, old, store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "stale"},
		func(store.Rider) bool { return true })
	if err != nil || len(riders) != 0 {
		t.Fatalf("riders of a claim taken over = %v, %v; want none", riders, err)
	}
	if n := count(t, b, "deliveries", "state = 'sending'"); n != 1 {
		t.Errorf("%d deliveries sending, want only the head", n)
	}
	// The current claim still can.
	riders, err = b.db.ClaimRiders(ctx, taken[0], store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "current"},
		func(store.Rider) bool { return true })
	if err != nil || len(riders) != 3 || riders[0].Gen != 2 {
		t.Fatalf("riders of the current claim = %+v, %v; want 3 under generation 2", riders, err)
	}
}

// TestFinishAloneSticks: a delivery finished to go alone is claimed so
// from then on, as a head and as a rider.
func TestFinishAloneSticks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	enqueue(t, b, "k1", "g", "firing", "alice")
	enqueue(t, b, "k2", "g", "firing", "alice")
	c, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 1, Takeover: true})
	if err != nil || len(c) != 1 || c[0].Alone {
		t.Fatalf("claim = %+v, %v; want one, not alone", c, err)
	}
	riders, err := b.db.ClaimRiders(ctx, c[0], store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "t"}, func(store.Rider) bool { return true })
	if err != nil || len(riders) != 1 {
		t.Fatalf("riders = %v, %v", riders, err)
	}
	res, err := b.db.Finish(ctx, store.Finish{OperationID: c[0].OperationID, Attempt: 1, Gen: 1, State: relay.StatePending,
		NextAttemptAt: *b.now, Alone: true, Now: *b.now, Carried: []store.Finish{{OperationID: riders[0].OperationID, Attempt: 1, Gen: 1,
			State: relay.StatePending, NextAttemptAt: *b.now, Alone: true, Now: *b.now}}})
	if err != nil || !res.Recorded || len(res.CarriedRecorded) != 1 || !res.CarriedRecorded[0] {
		t.Fatalf("Finish = %+v, %v", res, err)
	}
	c, err = b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 1, Takeover: true})
	if err != nil || len(c) != 1 || !c[0].Alone {
		t.Fatalf("claim again = %+v, %v; want the head, alone", c, err)
	}
	var offered []store.Rider
	if _, err := b.db.ClaimRiders(ctx, c[0], store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "t2"},
		func(r store.Rider) bool { offered = append(offered, r); return false }); err != nil {
		t.Fatal(err)
	}
	if len(offered) != 1 || !offered[0].Alone {
		t.Errorf("offered %+v, want the second delivery, alone", offered)
	}
}

// TestClaimRidersTakesOverAStoppedCombinedSend: after a worker stopped
// mid-send of a combined message, the next session's head carries the
// riders again (counted as an unconfirmed send and marked for resending,
// as a reclaimed head is), once it may take over; not before.
func TestClaimRidersTakesOverAStoppedCombinedSend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	all := func(store.Rider) bool { return true }
	old := lineOfFour(t, b)
	if riders, err := b.db.ClaimRiders(ctx, old, store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "g1"}, all); err != nil || len(riders) != 3 {
		t.Fatalf("generation 1's riders = %v, %v; want 3", riders, err)
	}
	// Generation 1 stops mid-send. Generation 2 takes the head over.
	head, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 2, Takeover: true})
	if err != nil || len(head) != 1 || !head[0].Reclaimed {
		t.Fatalf("takeover = %+v, %v; want the head, reclaimed", head, err)
	}
	// Before it may take over (the grace for the old holder's outcomes),
	// the riders, under a current lease, are not due.
	if riders, err := b.db.ClaimRiders(ctx, head[0], store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "early"}, all); err != nil || len(riders) != 0 {
		t.Fatalf("riders before takeover = %v, %v; want none", riders, err)
	}
	var offered []store.Rider
	riders, err := b.db.ClaimRiders(ctx, head[0], store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "g2", Takeover: true},
		func(r store.Rider) bool { offered = append(offered, r); return true })
	if err != nil || len(riders) != 3 {
		t.Fatalf("riders after takeover = %v, %v; want 3", riders, err)
	}
	for _, r := range offered {
		if !r.Reclaimed || r.Unconfirmed != 1 || !r.Resend {
			t.Errorf("offered %s reclaimed %v unconfirmed %d resend %v; want reclaimed, 1, marked", r.OperationID, r.Reclaimed, r.Unconfirmed, r.Resend)
		}
	}
	if n := count(t, b, "deliveries", "claim_gen = 2 AND state = 'sending' AND unconfirmed = 1 AND resend AND attempts = 2"); n != 4 {
		t.Errorf("%d deliveries claimed by generation 2 as resends on their second attempt, want 4 (head and riders)", n)
	}
}

// TestRiderSupersedableOnlyByItsRoute: a firing rider is left to
// supersession only when its group's resolved delivery is queued through
// the same route and conversation (as Supersede requires); one resolved
// through another route does not stop the run.
func TestRiderSupersedableOnlyByItsRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	enqueue(t, b, "k0", "g0", "firing", "alice")
	firing := enqueue(t, b, "k1", "g1", "firing", "alice")
	n := notification("k2")
	n.Route = "other"
	n.Messages = []store.NewMessage{{Conversation: "c", Target: relay.Target{To: "sip:alice@contoso.com"}, Text: "resolved g1",
		GroupKey: "g1", Status: "resolved"}}
	if _, err := b.db.Enqueue(ctx, n); err != nil {
		t.Fatal(err)
	}
	same := enqueue(t, b, "k3", "g1", "resolved", "alice")
	head, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 1, Takeover: true})
	if err != nil || len(head) != 1 {
		t.Fatalf("claim = %v, %v", head, err)
	}
	var offered []store.Rider
	if _, err := b.db.ClaimRiders(ctx, head[0], store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "t"},
		func(r store.Rider) bool { offered = append(offered, r); return false }); err != nil {
		t.Fatal(err)
	}
	if len(offered) != 1 || offered[0].OperationID != firing[0] || !offered[0].Supersedable {
		t.Fatalf("offered %+v, want %s, supersedable by %s (same route)", offered, firing[0], same[0])
	}
	// Without the resolved one of its own route, it is not.
	if _, err := b.db.Pool().Exec(ctx, `DELETE FROM deliveries WHERE operation_id = $1`, same[0]); err != nil {
		t.Fatal(err)
	}
	offered = nil
	if _, err := b.db.ClaimRiders(ctx, head[0], store.RiderClaim{Now: *b.now, Lease: time.Minute, Token: "t"},
		func(r store.Rider) bool { offered = append(offered, r); return false }); err != nil {
		t.Fatal(err)
	}
	if len(offered) != 1 || offered[0].Supersedable {
		t.Errorf("offered %+v, want %s, not supersedable (its group resolved through another route)", offered, firing[0])
	}
}

// lineOfFour queues four deliveries for alice and returns the first,
// claimed under session generation 1.
func lineOfFour(t *testing.T, b testBundle) store.Claimed {
	t.Helper()
	for i := range 4 {
		enqueue(t, b, fmt.Sprintf("k%d", i), "g", "firing", "alice")
	}
	c, err := b.db.Claim(context.Background(), *b.now, store.ClaimOptions{Limit: 1, Lease: time.Minute, Gen: 1, Takeover: true})
	if err != nil || len(c) != 1 {
		t.Fatalf("claim = %v, %v", c, err)
	}
	return c[0]
}
