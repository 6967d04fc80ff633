package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

func enqueue(t *testing.T, b testBundle, key, group, status string, rcpts ...string) []string {
	t.Helper()
	n := notification(key)
	for _, r := range rcpts {
		n.Messages = append(n.Messages, store.NewMessage{
			Conversation: "c", Target: relay.Target{To: "sip:" + r + "@contoso.com"}, Text: status + " " + group,
			GroupKey: group, Status: status,
		})
	}
	res, err := b.db.Enqueue(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	return res.OperationIDs
}

func TestClaimTakesOneHeadPerRecipientInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first := enqueue(t, b, "k1", "g1", "firing", "alice", "bob")
	second := enqueue(t, b, "k2", "g2", "firing", "alice")

	claimed, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range claimed {
		got[c.Target.To] = c.OperationID
		if c.Attempt != 1 || c.Reclaimed {
			t.Errorf("claimed %s attempt %d reclaimed %v, want attempt 1, not reclaimed", c.OperationID, c.Attempt, c.Reclaimed)
		}
	}
	want := map[string]string{"sip:alice@contoso.com": first[0], "sip:bob@contoso.com": first[1]}
	if len(got) != 2 || got["sip:alice@contoso.com"] != want["sip:alice@contoso.com"] || got["sip:bob@contoso.com"] != want["sip:bob@contoso.com"] {
		t.Fatalf("claimed %v, want the heads %v", got, want)
	}
	// Alice's head is in flight: her second delivery waits.
	again, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if err != nil || len(again) != 0 {
		t.Fatalf("second claim = %v, %v; want nothing while heads are in flight", again, err)
	}
	// Alice's head fails and must retry later: her line stays blocked, so
	// the second delivery cannot overtake the first.
	for _, c := range claimed {
		st, next := relay.StateDelivered, time.Time{}
		if c.OperationID == first[0] {
			st, next = relay.StatePending, b.now.Add(time.Minute)
		}
		res, err := b.db.Finish(ctx, store.Finish{OperationID: c.OperationID, Attempt: c.Attempt, Gen: 1, State: st,
			NextAttemptAt: next, Failed: st == relay.StatePending, Now: *b.now,
			Record: &store.AttemptRecord{UCWAOperationID: c.OperationID + ".1", Outcome: "x", StartedAt: *b.now, FinishedAt: *b.now}})
		if err != nil || !res.Recorded {
			t.Fatalf("Finish(%s) = %+v, %v", c.OperationID, res, err)
		}
	}
	if again, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true}); len(again) != 0 {
		t.Fatalf("claim while alice's head waits to retry = %v, want nothing", again)
	}
	b.advance(2 * time.Minute)
	again, _ = b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if len(again) != 1 || again[0].OperationID != first[0] || again[0].Attempt != 2 || again[0].Failures != 1 {
		t.Fatalf("claim after the retry time = %+v, want alice's first delivery, attempt 2", again)
	}
	_ = second
}

func TestFinishClaimsNextInOneTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first := enqueue(t, b, "k1", "g1", "firing", "alice")
	second := enqueue(t, b, "k2", "g1", "resolved", "alice")
	c, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if len(c) != 1 || c[0].OperationID != first[0] || !c[0].Supersedable {
		t.Fatalf("claim = %+v, want the firing delivery, supersedable by the queued resolved one", c)
	}
	res, err := b.db.Finish(ctx, store.Finish{OperationID: c[0].OperationID, Attempt: 1, Gen: 1, State: relay.StateDelivered,
		Now: *b.now, ClaimNext: &store.NextClaim{Recipient: c[0].Target.To, Lease: time.Minute}})
	if err != nil || !res.Recorded || res.Next == nil || res.Next.OperationID != second[0] || res.Next.Supersedable {
		t.Fatalf("Finish with ClaimNext = %+v, %v; want recorded and %s claimed", res, err, second[0])
	}
	// Nothing left for alice: the next finish claims nothing.
	res, err = b.db.Finish(ctx, store.Finish{OperationID: res.Next.OperationID, Attempt: 1, Gen: 1, State: relay.StateDelivered,
		Now: *b.now, ClaimNext: &store.NextClaim{Recipient: c[0].Target.To, Lease: time.Minute}})
	if err != nil || !res.Recorded || res.Next != nil {
		t.Fatalf("last Finish = %+v, %v; want recorded, nothing next", res, err)
	}
}

func TestReleaseGivesBackUntouched(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	enqueue(t, b, "k1", "g1", "firing", "alice")
	c, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if err := b.db.Release(ctx, c[0]); err != nil {
		t.Fatal(err)
	}
	again, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if len(again) != 1 || again[0].Attempt != 1 || again[0].Reclaimed {
		t.Fatalf("claim after release = %+v, want attempt 1 again, not reclaimed", again)
	}
}

// TestFinishRetryGetsItsNextDeliveryBack: a finish whose commit went
// through but whose answer was lost is tried again; the retry must get the
// next delivery its first try claimed, not strand it for a lease.
func TestFinishRetryGetsItsNextDeliveryBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	enqueue(t, b, "k1", "g1", "firing", "alice")
	second := enqueue(t, b, "k2", "g2", "firing", "alice")
	c, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	f := store.Finish{OperationID: c[0].OperationID, Attempt: 1, Gen: 1, State: relay.StateDelivered, Now: *b.now,
		ClaimNext: &store.NextClaim{Recipient: c[0].Target.To, Lease: time.Minute}}
	first, err := b.db.Finish(ctx, f)
	if err != nil || first.Next == nil || first.Next.OperationID != second[0] {
		t.Fatalf("first finish = %+v, %v", first, err)
	}
	retry, err := b.db.Finish(ctx, f) // the same finish again, as after a lost answer
	if err != nil || retry.Next == nil || retry.Next.OperationID != second[0] || retry.Next.Attempt != 1 || retry.Next.Reclaimed {
		t.Fatalf("retried finish = %+v, %v; want the same next delivery, attempt 1, not reclaimed", retry.Next, err)
	}
}

func TestFinishIsFenced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	enqueue(t, b, "k1", "g1", "firing", "alice")
	old, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if len(old) != 1 {
		t.Fatal("nothing claimed")
	}
	// A new session holder (generation 2) takes the row over at once.
	newer, err := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 2, Takeover: true})
	if err != nil || len(newer) != 1 || !newer[0].Reclaimed || newer[0].Attempt != 2 {
		t.Fatalf("claim by generation 2 = %+v, %v; want the row, reclaimed, attempt 2", newer, err)
	}
	// (A delivered outcome would win: see TestLateFinish. Any other loses.)
	res, err := b.db.Finish(ctx, store.Finish{OperationID: old[0].OperationID, Attempt: old[0].Attempt, Gen: 1,
		State: relay.StatePending, NextAttemptAt: b.now.Add(time.Minute), Failed: true, Now: *b.now,
		Record: &store.AttemptRecord{UCWAOperationID: "late", Outcome: "retry", StartedAt: *b.now, FinishedAt: *b.now}})
	if err != nil || res.Recorded {
		t.Fatalf("late Finish by generation 1 = %+v, %v; want fenced out", res, err)
	}
	d, _ := b.db.GetDelivery(ctx, old[0].OperationID)
	if d.State != relay.StateSending || len(d.AttemptLog) != 1 {
		t.Errorf("after the fenced finish: state %s with %d attempts logged, want sending with the late attempt logged", d.State, len(d.AttemptLog))
	}
}

func TestSupersede(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	firing := enqueue(t, b, "k1", "g1", "firing", "alice")
	firing2 := enqueue(t, b, "k2", "g1", "firing", "alice")
	other := enqueue(t, b, "k3", "g2", "firing", "alice")
	resolved := enqueue(t, b, "k4", "g1", "resolved", "alice")

	claimed, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if len(claimed) != 1 || claimed[0].OperationID != firing[0] {
		t.Fatalf("claimed %+v, want the first firing delivery", claimed)
	}
	by, err := b.db.Supersede(ctx, claimed[0], "Resolved before %d firing message(s) could be sent.\n", *b.now)
	if err != nil || by != resolved[0] {
		t.Fatalf("Supersede = %q, %v; want %q", by, err, resolved[0])
	}
	for id, want := range map[string]relay.State{firing[0]: relay.StateSuperseded, firing2[0]: relay.StateSuperseded,
		other[0]: relay.StatePending, resolved[0]: relay.StatePending} {
		d, _ := b.db.GetDelivery(ctx, id)
		if d.State != want {
			t.Errorf("%s is %s, want %s", id, d.State, want)
		}
	}
	d, _ := b.db.GetDelivery(ctx, resolved[0])
	if !strings.HasPrefix(d.Text, "Resolved before 2 firing message(s) could be sent.\n") {
		t.Errorf("resolved text = %q, want the note first", d.Text)
	}
	// The next head is the other group's delivery, then the resolved one.
	next, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if len(next) != 1 || next[0].OperationID != other[0] {
		t.Errorf("next claim = %+v, want %s", next, other[0])
	}
}

func TestRedeliver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := enqueue(t, b, "k1", "g1", "firing", "alice")
	if _, err := b.db.Redeliver(ctx, ids[0], store.RedeliverRequest{By: "test", Via: store.ViaAPI, Now: *b.now}); !errorsIs(err, relay.ErrConflict) {
		t.Errorf("Redeliver(pending) = %v, want ErrConflict", err)
	}
	if _, err := b.db.Redeliver(ctx, "NOPE-1", store.RedeliverRequest{By: "test", Via: store.ViaAPI, Now: *b.now}); !errorsIs(err, relay.ErrNotFound) {
		t.Errorf("Redeliver(unknown) = %v, want ErrNotFound", err)
	}
	c, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if _, err := b.db.Finish(ctx, store.Finish{OperationID: c[0].OperationID, Attempt: 1, Gen: 1, State: relay.StateDead,
		LastError: "declined", Now: *b.now}); err != nil {
		t.Fatal(err)
	}
	b.advance(time.Hour)
	r, err := b.db.Redeliver(ctx, ids[0], store.RedeliverRequest{By: "test", Via: store.ViaAPI, Now: *b.now})
	if prev := r.PreviousState; err != nil || prev != relay.StateDead {
		t.Fatalf("Redeliver(dead) = %s, %v; want it redelivered from dead", prev, err)
	}
	again, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if len(again) != 1 || again[0].Attempt != 2 || !again[0].QueuedAt.Equal(*b.now) {
		t.Errorf("claim after redeliver = %+v, want attempt 2 queued now", again)
	}
}

// TestRedeliverJoinsTheEndOfTheLine: a redelivered old delivery does not
// jump ahead of, or run beside, the recipient's newer ones.
func TestRedeliverJoinsTheEndOfTheLine(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	old := enqueue(t, b, "k1", "g1", "firing", "alice")
	c, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if _, err := b.db.Finish(ctx, store.Finish{OperationID: c[0].OperationID, Attempt: 1, Gen: 1, State: relay.StateDead, Now: *b.now}); err != nil {
		t.Fatal(err)
	}
	newer := enqueue(t, b, "k2", "g2", "firing", "alice")
	inFlight, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if len(inFlight) != 1 || inFlight[0].OperationID != newer[0] {
		t.Fatalf("claim = %+v, want the newer delivery", inFlight)
	}
	if _, err := b.db.Redeliver(ctx, old[0], store.RedeliverRequest{By: "test", Via: store.ViaAPI, Now: *b.now}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.db.Claim(ctx, *b.now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true}); len(got) != 0 {
		t.Fatalf("claim while alice's newer delivery is in flight = %+v, want nothing", got)
	}
	res, err := b.db.Finish(ctx, store.Finish{OperationID: newer[0], Attempt: 1, Gen: 1, State: relay.StateDelivered, Now: *b.now,
		ClaimNext: &store.NextClaim{Recipient: "sip:alice@contoso.com", Lease: time.Minute}})
	if err != nil || res.Next == nil || res.Next.OperationID != old[0] {
		t.Fatalf("after the newer one: next = %+v, %v; want the redelivered one", res.Next, err)
	}
}

func TestSessionLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	gen, ok, err := b.db.AcquireLease(ctx, "bot", "a", time.Minute, true)
	if err != nil || !ok || gen != 1 {
		t.Fatalf("a acquires = %d %v %v, want generation 1", gen, ok, err)
	}
	if _, ok, _ := b.db.AcquireLease(ctx, "bot", "b", time.Minute, true); ok {
		t.Fatal("b acquired a live lease held by a")
	}
	if gen, ok, _ := b.db.AcquireLease(ctx, "bot", "a", time.Minute, false); !ok || gen != 1 {
		t.Fatalf("a renews = %d %v, want generation 1 kept", gen, ok)
	}
	if err := b.db.ReleaseLease(ctx, "bot", "a"); err != nil {
		t.Fatal(err)
	}
	gen, ok, err = b.db.AcquireLease(ctx, "bot", "b", time.Minute, true)
	if err != nil || !ok || gen != 2 {
		t.Fatalf("b acquires after release = %d %v %v, want generation 2", gen, ok, err)
	}
	if _, ok, _ := b.db.AcquireLease(ctx, "bot", "a", time.Minute, true); ok {
		t.Fatal("a took the lease back from b while it was live")
	}
	// An expired lease is taken over.
	if _, _, err := b.db.AcquireLease(ctx, "bot", "b", time.Millisecond, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if gen, ok, _ := b.db.AcquireLease(ctx, "bot", "a", time.Minute, true); !ok || gen != 3 {
		t.Fatalf("a takes the expired lease = %d %v, want generation 3", gen, ok)
	}
	// a lost its lease (say the database was away) and acquires it afresh:
	// a new generation, so what it claimed before can be taken over at once.
	if gen, ok, _ := b.db.AcquireLease(ctx, "bot", "a", time.Minute, true); !ok || gen != 4 {
		t.Fatalf("a re-acquires afresh = %d %v, want generation 4", gen, ok)
	}
}

func errorsIs(err, target error) bool { return err != nil && errors.Is(err, target) }
