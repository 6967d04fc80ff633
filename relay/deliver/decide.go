package deliver

import (
	"fmt"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// This file is the one place that decides what becomes of a delivery: its
// next state, when it is tried again, which tries count as its own failure
// or as an unconfirmed send, and which sends carry the "(resent)" mark.
// Both functions are pure; the worker only carries out what they say.

// ResentMarker starts the text of a message sent again because an earlier
// try may have reached the recipient without the server confirming it.
const ResentMarker = "(resent) "

// Plan is what to do with a claimed delivery before sending it.
type Plan struct {
	// CheckSupersede: look for a resolved message of the same alert group
	// queued behind this firing one first; when there is one, it replaces
	// this delivery and nothing is sent (the rest of the plan is moot).
	CheckSupersede bool
	// Send says the delivery is to be sent, as Text.
	Send bool
	Text string
	// Finish ends the claim without sending when Send is false.
	Finish store.Finish
}

// Prepare decides whether a claimed delivery is sent, and how. A delivery
// queued longer than the route's max_age is dead, or uncertain when an
// earlier send may have reached the recipient. A reclaimed one (its
// previous worker stopped before recording the outcome: the recipient may
// have it; the claim counted it as an unconfirmed send) is sent again
// marked "(resent)", or ends uncertain when the route skips such messages
// or its max_resends is spent.
func Prepare(c store.Claimed, p Policy, now time.Time) Plan {
	f := baseFinish(c, now)
	if p.MaxAge > 0 && now.Sub(c.QueuedAt) > p.MaxAge {
		f.State = relay.StateDead
		f.LastError = fmt.Sprintf("expired: queued %s ago, over the route's max_age of %s",
			now.Sub(c.QueuedAt).Round(time.Second), p.MaxAge)
		if c.Unconfirmed > 0 {
			f.State = relay.StateUncertain
			f.LastError += "; an earlier send may have reached the recipient"
		}
		return Plan{Finish: f}
	}
	plan := Plan{CheckSupersede: p.Supersede && c.Supersedable}
	if c.Reclaimed {
		switch {
		case !p.ResendUncertain:
			f.State = relay.StateUncertain
			f.LastError = "the previous try stopped before the server confirmed it; the route does not resend uncertain messages"
			plan.Finish = f
			return plan
		case f.Unconfirmed > p.MaxResends:
			f.State = relay.StateUncertain
			f.LastError = fmt.Sprintf("the previous try stopped before the server confirmed it, and %s",
				resendsSpent(f.Unconfirmed, p.MaxResends))
			plan.Finish = f
			return plan
		}
	}
	plan.Send, plan.Text = true, c.Text
	if c.Resend || c.Reclaimed {
		plan.Text = ResentMarker + c.Text
	}
	return plan
}

// Decide turns the outcome of sending claimed delivery c into its finish.
// retry schedules the next try; rnd in [0, 1) places its jitter.
//
//   - Delivered ends the delivery.
//   - Permanent (the message or its recipient is refused) makes it dead.
//   - RetryLater caused by the session or the server (Outcome.Session:
//     failover, throttling, the network, the bot's own sign-in) is retried
//     when the session suggests, and never counts against the message.
//   - RetryLater caused by the message or recipient (no answer, busy, a
//     failed message) counts toward max_attempts, then the delivery is dead.
//   - Uncertain (accepted but never confirmed) is sent again, marked and
//     after a backoff, until max_resends is spent; then it ends uncertain.
//     A route that skips uncertain messages ends it uncertain at once.
//
// A retry whose time would fall past the route's max_age ends the delivery
// now rather than later: dead, or uncertain when a send of it may have
// reached the recipient.
func Decide(c store.Claimed, out relay.Outcome, p Policy, retry RetryPolicy, now time.Time, rnd float64) store.Finish {
	f := baseFinish(c, now)
	if out.Kind == 0 { // the sender gave no outcome: nothing was sent
		out.Kind, out.Session = relay.RetryLater, true
	}
	why := out.Reason
	if out.Detail != "" {
		why += ": " + out.Detail
	}
	pending := func(at time.Time) store.Finish {
		f.State, f.NextAttemptAt, f.LastError = relay.StatePending, at, why
		if p.MaxAge > 0 && at.Sub(c.QueuedAt) > p.MaxAge {
			f.State = relay.StateDead
			if f.Unconfirmed > 0 {
				f.State = relay.StateUncertain
			}
			f.LastError = fmt.Sprintf("expired: the next try would be past the route's max_age of %s (last: %s)", p.MaxAge, why)
		}
		return f
	}
	switch out.Kind {
	case relay.Delivered:
		f.State, f.Resend = relay.StateDelivered, false
		return f
	case relay.Permanent:
		f.State, f.LastError = relay.StateDead, why
		return f
	case relay.Uncertain:
		f.Unconfirmed++
		f.Resend = true
		switch {
		case !p.ResendUncertain:
			f.State, f.LastError = relay.StateUncertain, why
			return f
		case f.Unconfirmed > p.MaxResends:
			f.State = relay.StateUncertain
			f.LastError = fmt.Sprintf("%s (last: %s)", resendsSpent(f.Unconfirmed, p.MaxResends), why)
			return f
		}
		return pending(retry.Next(now, f.Unconfirmed, out.RetryAfter, rnd))
	}
	// RetryLater.
	if out.Session {
		// Paced by the session: its suggestion, else a short backoff that
		// stays short, since the session's own recovery sets the pace.
		return pending(retry.Next(now, min(c.Attempt-c.Failures, sessionRetrySteps), out.RetryAfter, rnd))
	}
	f.Failed = true
	if p.MaxAttempts > 0 && c.Failures+1 >= p.MaxAttempts {
		f.State = relay.StateDead
		if f.Unconfirmed > 0 {
			f.State = relay.StateUncertain // an earlier copy may have arrived
		}
		f.LastError = fmt.Sprintf("gave up after %d failed attempts (last: %s)", c.Failures+1, why)
		return f
	}
	return pending(retry.Next(now, c.Failures+1, out.RetryAfter, rnd))
}

// sessionRetrySteps caps the backoff of retries caused by the session: with
// the default base of 2 s, at most 8 s between a recovered session and the
// delivery's next try.
const sessionRetrySteps = 3

// baseFinish is the finish of claim c that changes nothing yet: counts
// carried over (a reclaim is counted as an unconfirmed send by the claim
// itself), the "(resent)" mark kept.
func baseFinish(c store.Claimed, now time.Time) store.Finish {
	return store.Finish{OperationID: c.OperationID, Attempt: c.Attempt, Gen: c.Gen, Now: now, QueuedAt: c.QueuedAt,
		Unconfirmed: c.Unconfirmed, Resend: c.Resend || c.Reclaimed}
}

func resendsSpent(unconfirmed, maxResends int) string {
	return fmt.Sprintf("gave up after %d unconfirmed sends: the route's max_resends of %d is spent; the recipient may have received it",
		unconfirmed, maxResends)
}
