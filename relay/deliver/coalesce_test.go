package deliver

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

func coalescePolicy() Policy {
	p := decidePolicy()
	p.Coalesce, p.CoalesceAfter, p.MaxMessageBytes = true, 3, 8192
	return p
}

func TestCoalesces(t *testing.T) {
	t.Parallel()
	send := Plan{Send: true, Text: "x"}
	for _, tc := range []struct {
		name   string
		behind int
		failed int
		alone  bool
		plan   Plan
		edit   func(*Policy)
		want   bool
	}{
		{name: "more than coalesce_after wait", behind: 3, plan: send, want: true},
		{name: "coalesce_after wait, head included", behind: 2, plan: send},
		{name: "alone", behind: 0, plan: send},
		{name: "route turned it off", behind: 30, plan: send, edit: func(p *Policy) { p.Coalesce = false }},
		{name: "head to go alone", behind: 30, alone: true, plan: send},
		{name: "head failed before (no answer): still carries", behind: 30, failed: 1, plan: send, want: true},
		{name: "head not sent", behind: 30, plan: Plan{}},
		{name: "coalesce_after 1", behind: 1, plan: send, edit: func(p *Policy) { p.CoalesceAfter = 1 }, want: true},
	} {
		p := coalescePolicy()
		if tc.edit != nil {
			tc.edit(&p)
		}
		c := claimed(1, time.Minute)
		c.Behind, c.Failures, c.Alone = tc.behind, tc.failed, tc.alone
		if got := Coalesces(c, tc.plan, p); got != tc.want {
			t.Errorf("%s: Coalesces = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRide(t *testing.T) {
	t.Parallel()
	head := claimed(1, time.Minute)
	rider := func(edit func(*store.Rider)) store.Rider {
		r := store.Rider{Claimed: claimed(0, 30*time.Second), Due: true}
		r.OperationID, r.Text = "rider", "HighLatency on api"
		if edit != nil {
			edit(&r)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		r    store.Rider
		edit func(*Policy)
		want string // "" refused
	}{
		{name: "due, same target", r: rider(nil), want: "HighLatency on api"},
		{name: "marked for resending", r: rider(func(r *store.Rider) { r.Resend, r.Unconfirmed = true, 1 }), want: ResentMarker + "HighLatency on api"},
		{name: "not due", r: rider(func(r *store.Rider) { r.Due = false })},
		{name: "other subject", r: rider(func(r *store.Rider) { r.Target.Subject = "Staging" })},
		{name: "other importance", r: rider(func(r *store.Rider) { r.Target.Importance = "Urgent" })},
		{name: "to go alone", r: rider(func(r *store.Rider) { r.Alone = true })},
		{name: "failed before (no answer)", r: rider(func(r *store.Rider) { r.Failures = 1 }), want: "HighLatency on api"},
		{name: "expired", r: rider(func(r *store.Rider) { r.QueuedAt = decideNow.Add(-2 * time.Hour) })},
		{name: "left to supersession", r: rider(func(r *store.Rider) { r.Supersedable = true })},
		{name: "supersedable, route does not supersede", r: rider(func(r *store.Rider) { r.Supersedable = true }),
			edit: func(p *Policy) { p.Supersede = false }, want: "HighLatency on api"},
		{name: "its route does not coalesce", r: rider(nil), edit: func(p *Policy) { p.Coalesce = false }},
	} {
		p := coalescePolicy()
		if tc.edit != nil {
			tc.edit(&p)
		}
		text, ok := Ride(head, tc.r, p, decideNow)
		if ok != (tc.want != "") || text != tc.want {
			t.Errorf("%s: Ride = %q, %v; want %q", tc.name, text, ok, tc.want)
		}
	}
}

func TestCoalesceText(t *testing.T) {
	t.Parallel()
	texts := []string{"[FIRING:1] DiskFull\ndb1 is full", "(resent) [FIRING:1] HighLatency", "[RESOLVED] DiskFull"}
	got := Coalesce(texts)
	want := "3 notifications while delivery was catching up (oldest first)" +
		"\n\n----- 1 of 3 -----\n[FIRING:1] DiskFull\ndb1 is full" +
		"\n\n----- 2 of 3 -----\n(resent) [FIRING:1] HighLatency" +
		"\n\n----- 3 of 3 -----\n[RESOLVED] DiskFull"
	if got != want {
		t.Errorf("Coalesce =\n%s\nwant\n%s", got, want)
	}
	if back, ok := Sections(got); !ok || !slices.Equal(back, texts) {
		t.Errorf("Sections(Coalesce(texts)) = %q, %v; want the texts back", back, ok)
	}
	for _, notOne := range []string{"[FIRING:1] DiskFull", "", "3 notifications while delivery was catching up (oldest first)\n\n----- 1 of 3 -----\nonly one",
		"0 notifications while delivery was catching up (oldest first)"} {
		if back, ok := Sections(notOne); ok {
			t.Errorf("Sections(%q) = %q, want not a combined message", notOne, back)
		}
	}
	// CoalescedLen is exact, across the digit boundaries of the counts.
	for _, n := range []int{1, 2, 9, 10, 11, 99, 100, 101, 999, 1000, 1001} {
		var ts []string
		for i := range n {
			ts = append(ts, strings.Repeat("x", i%7))
		}
		if got, want := CoalescedLen(n, textBytes(ts)), len(Coalesce(ts)); got != want {
			t.Errorf("CoalescedLen(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestCombinedOutcome(t *testing.T) {
	t.Parallel()
	refused := relay.Outcome{Kind: relay.Permanent, Reason: "refused", Detail: "400 BadRequest"}
	if got, alone := CombinedOutcome(refused, 0); got != refused || alone {
		t.Errorf("sent alone: %+v, %v; want unchanged", got, alone)
	}
	got, alone := CombinedOutcome(refused, 4)
	if got.Kind != relay.RetryLater || !got.Session || !alone || !strings.Contains(got.Detail, "400 BadRequest") ||
		!strings.Contains(got.Detail, "carrying 5 deliveries") {
		t.Errorf("combined refusal = %+v, %v; want a retry counted against none, each alone, saying why", got, alone)
	}
	for _, k := range []relay.OutcomeKind{relay.Delivered, relay.Uncertain, relay.RetryLater} {
		out := relay.Outcome{Kind: k, Reason: "r"}
		if got, alone := CombinedOutcome(out, 4); got != out || alone {
			t.Errorf("%v: %+v, %v; want unchanged", k, got, alone)
		}
	}
}

var combinedRefusal, _ = CombinedOutcome(relay.Outcome{Kind: relay.Permanent, Reason: "refused"}, 1)

// TestDecideCarried: a carried delivery gets the outcome of the message
// that carried it, under its own counts and policy; a retry falls with
// its head's.
func TestDecideCarried(t *testing.T) {
	t.Parallel()
	p := coalescePolicy()
	head := claimed(3, time.Minute)
	r := claimed(1, 30*time.Second)
	r.OperationID = "rider"
	for _, tc := range []struct {
		out         relay.Outcome
		state       relay.State
		unconfirmed int
		resend      bool
		failed      bool
	}{
		{out: relay.Outcome{Kind: relay.Delivered}, state: relay.StateDelivered},
		{out: relay.Outcome{Kind: relay.Uncertain, Reason: "no confirmation"}, state: relay.StatePending, unconfirmed: 1, resend: true},
		{out: relay.Outcome{Kind: relay.RetryLater, Session: true, Reason: "pool gone"}, state: relay.StatePending},
		{out: relay.Outcome{Kind: relay.RetryLater, Reason: "no answer"}, state: relay.StatePending, failed: true},
		{out: combinedRefusal, state: relay.StatePending},
	} {
		hf := Decide(head, tc.out, p, decideRetry, decideNow, 0.9)
		f := DecideCarried(hf, r, tc.out, p, decideRetry, decideNow, 0.1)
		name := fmt.Sprintf("%v %s", tc.out.Kind, tc.out.Reason)
		if f.OperationID != "rider" || f.Attempt != 1 || f.State != tc.state || f.Unconfirmed != tc.unconfirmed ||
			f.Resend != tc.resend || f.Failed != tc.failed {
			t.Errorf("%s: %+v, want %s unconfirmed %d resend %v failed %v", name, f, tc.state, tc.unconfirmed, tc.resend, tc.failed)
		}
		if f.State == relay.StatePending && !f.NextAttemptAt.Equal(hf.NextAttemptAt) {
			t.Errorf("%s: retry at %s, want the head's %s", name, f.NextAttemptAt, hf.NextAttemptAt)
		}
	}
}

// TestDecideCarriedPastMaxAge: a rider whose head retries later than the
// rider's max_age allows ends now, not at a claim after it expired.
func TestDecideCarriedPastMaxAge(t *testing.T) {
	t.Parallel()
	p := coalescePolicy()
	head := store.Finish{State: relay.StatePending, NextAttemptAt: decideNow.Add(10 * time.Minute)}
	r := claimed(1, p.MaxAge-time.Minute)
	out := relay.Outcome{Kind: relay.RetryLater, Session: true, Reason: "pool gone"}
	f := DecideCarried(head, r, out, p, decideRetry, decideNow, 0.5)
	if f.State != relay.StateDead || !strings.Contains(f.LastError, "max_age") {
		t.Errorf("%+v, want dead, past max_age", f)
	}
	r.Unconfirmed = 1
	if f := DecideCarried(head, r, out, p, decideRetry, decideNow, 0.5); f.State != relay.StateUncertain {
		t.Errorf("after an unconfirmed send: %s, want uncertain", f.State)
	}
}
