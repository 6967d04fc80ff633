package deliver

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

var (
	decideNow   = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	decideRetry = RetryPolicy{Base: time.Second, Max: time.Minute, Jitter: 0.2, RetryAfterMax: 10 * time.Minute}
)

func decidePolicy() Policy {
	return Policy{MaxAttempts: 3, MaxAge: time.Hour, ResendUncertain: true, MaxResends: 2, Supersede: true}
}

// claimed is a delivery on its attempt-th try, queued age ago.
func claimed(attempt int, age time.Duration) store.Claimed {
	return store.Claimed{OperationID: "op", Attempt: attempt, Gen: 7, Text: "DiskFull on db1",
		QueuedAt: decideNow.Add(-age), Target: relay.Target{To: "sip:dba@contoso.com"}}
}

// reclaim makes c a claim taken over from a worker that stopped mid-send,
// after before unconfirmed sends: as the store returns it, the reclaim
// already counted and the delivery marked for resending.
func reclaim(c *store.Claimed, before int) {
	c.Reclaimed, c.Unconfirmed, c.Resend = true, before+1, true
}

func TestDecide(t *testing.T) {
	t.Parallel()
	type want struct {
		state       relay.State
		failed      bool
		unconfirmed int
		resend      bool
		next        time.Duration // from now, pending only
		err         string        // part of LastError
	}
	retry := func(kind relay.OutcomeKind, session bool, after time.Duration) relay.Outcome {
		return relay.Outcome{Kind: kind, Session: session, RetryAfter: after, Reason: "r", Detail: "d"}
	}
	tests := []struct {
		name   string
		c      func(*store.Claimed)
		policy func(*Policy)
		out    relay.Outcome
		want   want
	}{
		{"delivered", nil, nil, relay.Outcome{Kind: relay.Delivered}, want{state: relay.StateDelivered}},
		{"delivered after a reclaim keeps the reclaim's count", func(c *store.Claimed) { reclaim(c, 1) }, nil,
			relay.Outcome{Kind: relay.Delivered}, want{state: relay.StateDelivered, unconfirmed: 2}},
		{"delivered clears the resent mark", func(c *store.Claimed) { c.Resend = true }, nil,
			relay.Outcome{Kind: relay.Delivered}, want{state: relay.StateDelivered}},
		{"permanent is dead", nil, nil, retry(relay.Permanent, false, 0), want{state: relay.StateDead, err: "r: d"}},

		{"session retry, first", nil, nil, retry(relay.RetryLater, true, 0),
			want{state: relay.StatePending, next: time.Second, err: "r: d"}},
		{"session retry honours the session's delay", nil, nil, retry(relay.RetryLater, true, 7*time.Second),
			want{state: relay.StatePending, next: 7 * time.Second}},
		{"session retry at the failure limit is not counted", func(c *store.Claimed) { c.Attempt, c.Failures = 5, 2 }, nil,
			retry(relay.RetryLater, true, 0), want{state: relay.StatePending, next: 4 * time.Second}},
		{"session retry backoff stays short", func(c *store.Claimed) { c.Attempt = 40 }, nil,
			retry(relay.RetryLater, true, 0), want{state: relay.StatePending, next: 4 * time.Second}},
		{"session retry after a reclaim keeps the mark and the count", func(c *store.Claimed) { reclaim(c, 0) }, nil,
			retry(relay.RetryLater, true, 0), want{state: relay.StatePending, unconfirmed: 1, resend: true, next: time.Second}},
		{"no outcome at all is a session retry", nil, nil, relay.Outcome{},
			want{state: relay.StatePending, next: time.Second}},

		{"message retry, first", nil, nil, retry(relay.RetryLater, false, 0),
			want{state: relay.StatePending, failed: true, next: time.Second}},
		{"message retry backs off by failures", func(c *store.Claimed) { c.Attempt, c.Failures = 9, 1 }, nil,
			retry(relay.RetryLater, false, 0), want{state: relay.StatePending, failed: true, next: 2 * time.Second}},
		{"message retry one below the limit", func(c *store.Claimed) { c.Attempt, c.Failures = 2, 1 }, nil,
			retry(relay.RetryLater, false, 0), want{state: relay.StatePending, failed: true, next: 2 * time.Second}},
		{"message retry at the limit is dead", func(c *store.Claimed) { c.Attempt, c.Failures = 3, 2 }, nil,
			retry(relay.RetryLater, false, 0), want{state: relay.StateDead, failed: true, err: "gave up after 3 failed attempts"}},
		{"message retry at the limit after an unconfirmed send ends uncertain", func(c *store.Claimed) {
			c.Attempt, c.Failures, c.Unconfirmed, c.Resend = 4, 2, 1, true
		}, nil, retry(relay.RetryLater, false, 0), want{state: relay.StateUncertain, failed: true, unconfirmed: 1, resend: true, err: "gave up after 3 failed attempts"}},
		{"message retry keeps the resent mark", func(c *store.Claimed) { c.Resend, c.Unconfirmed = true, 1 }, nil,
			retry(relay.RetryLater, false, 0), want{state: relay.StatePending, failed: true, unconfirmed: 1, resend: true, next: time.Second}},

		{"uncertain is resent after a backoff, never at once", nil, nil, retry(relay.Uncertain, true, 0),
			want{state: relay.StatePending, unconfirmed: 1, resend: true, next: time.Second}},
		{"uncertain honours the server's delay", nil, nil, retry(relay.Uncertain, true, 30*time.Second),
			want{state: relay.StatePending, unconfirmed: 1, resend: true, next: 30 * time.Second}},
		{"uncertain one below the resend limit", func(c *store.Claimed) { c.Unconfirmed, c.Resend = 1, true }, nil,
			retry(relay.Uncertain, false, 0), want{state: relay.StatePending, unconfirmed: 2, resend: true, next: 2 * time.Second}},
		{"uncertain at the resend limit ends uncertain", func(c *store.Claimed) { c.Unconfirmed, c.Resend = 2, true }, nil,
			retry(relay.Uncertain, false, 0), want{state: relay.StateUncertain, unconfirmed: 3, resend: true, err: "gave up after 3 unconfirmed sends"}},
		{"uncertain after a reclaim spends two", func(c *store.Claimed) { reclaim(c, 1) }, nil,
			retry(relay.Uncertain, false, 0), want{state: relay.StateUncertain, unconfirmed: 3, resend: true, err: "max_resends of 2"}},
		{"uncertain, route skips", nil, func(p *Policy) { p.ResendUncertain = false }, retry(relay.Uncertain, false, 0),
			want{state: relay.StateUncertain, unconfirmed: 1, resend: true, err: "r: d"}},
		{"uncertain, no resends allowed", nil, func(p *Policy) { p.MaxResends = 0 }, retry(relay.Uncertain, false, 0),
			want{state: relay.StateUncertain, unconfirmed: 1, resend: true, err: "max_resends of 0"}},
		{"uncertain does not count as a failure", func(c *store.Claimed) { c.Failures = 2 }, nil, retry(relay.Uncertain, false, 0),
			want{state: relay.StatePending, unconfirmed: 1, resend: true, next: time.Second}},

		{"a retry past max_age is dead now", func(c *store.Claimed) { c.QueuedAt = decideNow.Add(-time.Hour + 500*time.Millisecond) }, nil,
			retry(relay.RetryLater, true, 0), want{state: relay.StateDead, err: "past the route's max_age of 1h0m0s"}},
		{"a retry landing on max_age is not", func(c *store.Claimed) { c.QueuedAt = decideNow.Add(-time.Hour + time.Second) }, nil,
			retry(relay.RetryLater, true, 0), want{state: relay.StatePending, next: time.Second}},
		{"an uncertain resend past max_age ends uncertain", func(c *store.Claimed) { c.QueuedAt = decideNow.Add(-time.Hour) }, nil,
			retry(relay.Uncertain, false, 0), want{state: relay.StateUncertain, unconfirmed: 1, resend: true, err: "max_age"}},
		{"a session retry past max_age after an unconfirmed send ends uncertain", func(c *store.Claimed) {
			c.QueuedAt, c.Unconfirmed, c.Resend = decideNow.Add(-time.Hour), 1, true
		}, nil, retry(relay.RetryLater, true, 0), want{state: relay.StateUncertain, unconfirmed: 1, resend: true, err: "max_age"}},
		{"delivered past max_age is delivered", func(c *store.Claimed) { c.QueuedAt = decideNow.Add(-2 * time.Hour) }, nil,
			relay.Outcome{Kind: relay.Delivered}, want{state: relay.StateDelivered}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claimed(1, time.Minute)
			if tt.c != nil {
				tt.c(&c)
			}
			p := decidePolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			f := Decide(c, tt.out, p, decideRetry, decideNow, 0.5)
			got := want{state: f.State, failed: f.Failed, unconfirmed: f.Unconfirmed, resend: f.Resend}
			if f.State == relay.StatePending {
				got.next = f.NextAttemptAt.Sub(decideNow)
			}
			w := tt.want
			w.err = ""
			if got != w {
				t.Errorf("Decide = %+v, want %+v", got, w)
			}
			if tt.want.err != "" && !strings.Contains(f.LastError, tt.want.err) {
				t.Errorf("LastError = %q, want it to contain %q", f.LastError, tt.want.err)
			}
			if f.OperationID != c.OperationID || f.Attempt != c.Attempt || f.Gen != c.Gen {
				t.Errorf("finish fences %s/%d/%d, want the claim's %s/%d/%d", f.OperationID, f.Attempt, f.Gen, c.OperationID, c.Attempt, c.Gen)
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		c          func(*store.Claimed)
		policy     func(*Policy)
		send       bool
		text       string
		supersede  bool
		state      relay.State // when not sent
		unconfirm  int
		lastErrHas string
	}{
		{name: "fresh", send: true, text: "DiskFull on db1"},
		{name: "marked for resend", c: func(c *store.Claimed) { c.Resend = true }, send: true, text: ResentMarker + "DiskFull on db1"},
		{name: "reclaimed is resent marked", c: func(c *store.Claimed) { reclaim(c, 0) }, send: true, text: ResentMarker + "DiskFull on db1"},
		{name: "reclaimed one below the resend limit", c: func(c *store.Claimed) { reclaim(c, 1) }, send: true,
			text: ResentMarker + "DiskFull on db1"},
		{name: "reclaimed at the resend limit ends uncertain", c: func(c *store.Claimed) { reclaim(c, 2) },
			state: relay.StateUncertain, unconfirm: 3, lastErrHas: "max_resends of 2 is spent"},
		{name: "reclaimed, route skips", c: func(c *store.Claimed) { reclaim(c, 0) }, policy: func(p *Policy) { p.ResendUncertain = false },
			state: relay.StateUncertain, unconfirm: 1, lastErrHas: "does not resend"},
		{name: "expired", c: func(c *store.Claimed) { c.QueuedAt = decideNow.Add(-time.Hour - time.Second) },
			state: relay.StateDead, lastErrHas: "expired: queued 1h0m1s ago"},
		{name: "expired after an unconfirmed send is uncertain", c: func(c *store.Claimed) {
			reclaim(c, 0)
			c.QueuedAt = decideNow.Add(-time.Hour - time.Second)
		}, state: relay.StateUncertain, unconfirm: 1, lastErrHas: "may have reached the recipient"},
		{name: "exactly max_age is not expired", c: func(c *store.Claimed) { c.QueuedAt = decideNow.Add(-time.Hour) }, send: true, text: "DiskFull on db1"},
		{name: "expired beats supersession", c: func(c *store.Claimed) { c.Supersedable = true; c.QueuedAt = decideNow.Add(-2 * time.Hour) },
			state: relay.StateDead, lastErrHas: "expired"},
		{name: "supersedable", c: func(c *store.Claimed) { c.Supersedable = true }, send: true, text: "DiskFull on db1", supersede: true},
		{name: "supersedable, route does not supersede", c: func(c *store.Claimed) { c.Supersedable = true },
			policy: func(p *Policy) { p.Supersede = false }, send: true, text: "DiskFull on db1"},
		{name: "supersedable and reclaimed at the limit: supersession first", c: func(c *store.Claimed) {
			c.Supersedable = true
			reclaim(c, 2)
		}, supersede: true, state: relay.StateUncertain, unconfirm: 3, lastErrHas: "spent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claimed(2, time.Minute)
			if tt.c != nil {
				tt.c(&c)
			}
			p := decidePolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			plan := Prepare(c, p, decideNow)
			if plan.Send != tt.send || plan.CheckSupersede != tt.supersede {
				t.Fatalf("Prepare: send %v, check supersession %v; want %v, %v", plan.Send, plan.CheckSupersede, tt.send, tt.supersede)
			}
			if tt.send {
				if plan.Text != tt.text {
					t.Errorf("text %q, want %q", plan.Text, tt.text)
				}
				return
			}
			f := plan.Finish
			if f.State != tt.state || f.Unconfirmed != tt.unconfirm || f.Record != nil || f.Failed {
				t.Errorf("finish %s, unconfirmed %d, record %v, failed %v; want %s, %d, none, false",
					f.State, f.Unconfirmed, f.Record, f.Failed, tt.state, tt.unconfirm)
			}
			if !strings.Contains(f.LastError, tt.lastErrHas) {
				t.Errorf("LastError %q, want it to contain %q", f.LastError, tt.lastErrHas)
			}
		})
	}
}

// TestDecisionInvariants runs every outcome kind against every count at
// and around its limit, ages at max_age, both uncertain policies and both
// supersession settings, and checks what must hold whatever the case.
func TestDecisionInvariants(t *testing.T) {
	t.Parallel()
	kinds := []relay.Outcome{
		{}, {Kind: relay.Delivered},
		{Kind: relay.RetryLater, Session: true}, {Kind: relay.RetryLater, Session: true, RetryAfter: 3 * time.Second},
		{Kind: relay.RetryLater}, {Kind: relay.Permanent},
		{Kind: relay.Uncertain}, {Kind: relay.Uncertain, Session: true, RetryAfter: time.Second},
	}
	ages := []time.Duration{0, time.Hour - 2*time.Second, time.Hour, time.Hour + time.Second}
	n := 0
	for _, out := range kinds {
		for failures := range 4 {
			for unconfirmed := range 4 {
				for _, reclaimed := range []bool{false, true} {
					for _, age := range ages {
						for _, resend := range []bool{true, false} {
							for _, supersede := range []bool{true, false} {
								n++
								p := decidePolicy()
								p.ResendUncertain, p.Supersede = resend, supersede
								c := claimed(failures+unconfirmed+1, age)
								c.Failures, c.Unconfirmed, c.Supersedable = failures, unconfirmed, true
								if reclaimed {
									reclaim(&c, unconfirmed)
								}
								name := fmt.Sprintf("%v/f%d/u%d/reclaimed=%v/age=%s/resend=%v/supersede=%v", out.Kind, failures, unconfirmed, reclaimed, age, resend, supersede)
								checkPlan(t, name, c, p, Prepare(c, p, decideNow))
								checkFinish(t, name, c, p, out, Decide(c, out, p, decideRetry, decideNow, 0.99))
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d combinations", n)
}

func checkPlan(t *testing.T, name string, c store.Claimed, p Policy, plan Plan) {
	t.Helper()
	expired := decideNow.Sub(c.QueuedAt) > p.MaxAge
	switch {
	case expired && (plan.Send || plan.Finish.State != relay.StateDead) && c.Unconfirmed == 0:
		t.Errorf("%s: expired delivery planned %+v, want dead", name, plan)
	case expired && (plan.Send || plan.Finish.State != relay.StateUncertain) && c.Unconfirmed > 0:
		t.Errorf("%s: expired delivery that may have arrived planned %+v, want uncertain", name, plan)
	case !expired && plan.CheckSupersede != p.Supersede:
		t.Errorf("%s: supersession check %v with route supersede %v", name, plan.CheckSupersede, p.Supersede)
	case plan.Send && (c.Resend || c.Reclaimed) != strings.HasPrefix(plan.Text, ResentMarker):
		t.Errorf("%s: text %q: the mark must be there exactly for a resend", name, plan.Text)
	case !plan.Send && !expired && !c.Reclaimed:
		t.Errorf("%s: a fresh, unexpired delivery was not sent", name)
	case !plan.Send && plan.Finish.State != relay.StateDead && plan.Finish.State != relay.StateUncertain:
		t.Errorf("%s: not sent, but left %s", name, plan.Finish.State)
	}
}

func checkFinish(t *testing.T, name string, c store.Claimed, p Policy, out relay.Outcome, f store.Finish) {
	t.Helper()
	counted := c.Unconfirmed
	sessionCaused := out.Kind == 0 || (out.Kind == relay.RetryLater && out.Session)
	switch {
	case out.Kind == relay.Uncertain && f.Unconfirmed != counted+1, out.Kind != relay.Uncertain && f.Unconfirmed != counted:
		t.Errorf("%s: unconfirmed %d from %d", name, f.Unconfirmed, counted)
	case f.State == relay.StatePending && !f.NextAttemptAt.After(decideNow):
		t.Errorf("%s: retried at once", name)
	case f.State == relay.StatePending && f.NextAttemptAt.Sub(c.QueuedAt) > p.MaxAge:
		t.Errorf("%s: retry scheduled past max_age", name)
	case sessionCaused && f.Failed:
		t.Errorf("%s: a session fault counted against the message", name)
	case sessionCaused && f.State != relay.StatePending && !strings.Contains(f.LastError, "max_age"):
		t.Errorf("%s: a session fault ended the delivery %s (%s)", name, f.State, f.LastError)
	case f.State == relay.StatePending && f.Unconfirmed > p.MaxResends && out.Kind == relay.Uncertain:
		t.Errorf("%s: resent beyond max_resends", name)
	case out.Kind == relay.Uncertain && !p.ResendUncertain && f.State != relay.StateUncertain:
		t.Errorf("%s: route skips uncertain, got %s", name, f.State)
	case out.Kind == relay.Delivered && f.State != relay.StateDelivered:
		t.Errorf("%s: delivered outcome gave %s", name, f.State)
	case f.State == relay.StateDead && out.Kind != relay.Permanent && !f.Failed && !strings.Contains(f.LastError, "max_age"):
		t.Errorf("%s: dead without a permanent refusal, a counted failure or expiry: %s", name, f.LastError)
	case f.State == relay.StateDead && f.Unconfirmed > 0 && out.Kind != relay.Permanent && !f.Failed:
		t.Errorf("%s: dead though a send may have reached the recipient: %s", name, f.LastError)
	case f.Resend != (c.Resend || c.Reclaimed || out.Kind == relay.Uncertain) && f.State != relay.StateDelivered:
		t.Errorf("%s: resend mark %v", name, f.Resend)
	}
}
