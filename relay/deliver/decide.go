package deliver

import (
	"fmt"
	"strings"
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
	pending := func(at time.Time) store.Finish { return retryAt(f, at, c.QueuedAt, p, why) }
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

// retryAt is f retried at at, for the reason why: pending, or ended now
// when at is past the route's max_age for a delivery queued at queuedAt
// (dead, or uncertain when a send of it may have reached the recipient).
func retryAt(f store.Finish, at, queuedAt time.Time, p Policy, why string) store.Finish {
	f.State, f.NextAttemptAt, f.LastError = relay.StatePending, at, why
	if p.MaxAge > 0 && at.Sub(queuedAt) > p.MaxAge {
		f.State = relay.StateDead
		if f.Unconfirmed > 0 {
			f.State = relay.StateUncertain
		}
		f.LastError = fmt.Sprintf("expired: the next try would be past the route's max_age of %s (last: %s)", p.MaxAge, why)
	}
	return f
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

// Coalescing: when a backlog builds for one recipient, the next send
// carries as many of the deliveries waiting behind it as fit in one
// message, oldest first (see Policy.Coalesce). Each carried delivery
// keeps its own state and attempt record; the functions below decide
// which ride and what becomes of them.

// Coalesces reports whether the send of claimed delivery c, planned as
// plan, should carry the deliveries behind it: the route coalesces, more
// than CoalesceAfter deliveries wait for the recipient (c included), and
// c is not to go alone (a message carrying it was refused).
func Coalesces(c store.Claimed, plan Plan, p Policy) bool {
	return plan.Send && p.Coalesce && p.CoalesceAfter > 0 && c.Behind >= p.CoalesceAfter && !c.Alone
}

// Ride says whether queued delivery r may ride in the message that sends
// claimed delivery head, and with what text. It may when it is due, goes
// to the same target, its route (policy p) coalesces, it is not to go
// alone, and Prepare would send it as it is: not expired, and
// not a firing message whose group's resolved one is queued (that one is
// left to supersession). The first rider refused ends the run, so that
// the recipient's order holds.
func Ride(head store.Claimed, r store.Rider, p Policy, now time.Time) (string, bool) {
	if !r.Due || r.Target != head.Target || !p.Coalesce || r.Alone {
		return "", false
	}
	plan := Prepare(r.Claimed, p, now)
	if !plan.Send || plan.CheckSupersede {
		return "", false
	}
	return plan.Text, true
}

// coalesceHeader and coalesceSeparator frame a message carrying several
// deliveries; %d are counts.
const (
	coalesceHeader    = "%d notifications while delivery was catching up (oldest first)"
	coalesceSeparator = "\n\n----- %d of %d -----\n"
)

// Coalesce is the text of one message carrying texts, oldest first.
func Coalesce(texts []string) string {
	var b strings.Builder
	b.Grow(CoalescedLen(len(texts), textBytes(texts)))
	fmt.Fprintf(&b, coalesceHeader, len(texts))
	for i, t := range texts {
		fmt.Fprintf(&b, coalesceSeparator, i+1, len(texts))
		b.WriteString(t)
	}
	return b.String()
}

// CoalescedLen is the length in bytes of Coalesce of n texts holding
// textBytes bytes in all. It is counted, not formatted: gather asks it for
// every rider it considers, hundreds per message in a long backlog.
func CoalescedLen(n, textBytes int) int {
	// The formats without their verbs, then the digits the verbs print:
	// n in the header and in every separator, and 1 to n once each.
	fixed := len(coalesceHeader) - len("%d") + n*(len(coalesceSeparator)-2*len("%d"))
	return fixed + digits(n)*(n+1) + digitsUpTo(n) + textBytes
}

// digits is the number of decimal digits of n >= 0.
func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// digitsUpTo is the number of decimal digits of 1, 2, ..., n together.
func digitsUpTo(n int) int {
	total := 0
	for d, lo := 1, 1; lo <= n; d, lo = d+1, lo*10 {
		total += d * (min(n, lo*10-1) - lo + 1)
	}
	return total
}

func textBytes(texts []string) int {
	n := 0
	for _, t := range texts {
		n += len(t)
	}
	return n
}

// CombinedOutcome is the outcome a send carrying riders (more than zero)
// stands for, and whether each delivery it carried goes alone from now
// on. A permanent refusal of a combined message says nothing about which
// delivery the server refused: none of them counts it, and each is tried
// again soon in a message of its own (see Coalesces and Ride), where a
// refusal is its own. Every other outcome holds for each delivery as if it
// had been sent alone.
func CombinedOutcome(out relay.Outcome, riders int) (relay.Outcome, bool) {
	if riders == 0 || out.Kind != relay.Permanent {
		return out, false
	}
	out.Kind, out.Session = relay.RetryLater, true
	note := fmt.Sprintf("refused a message carrying %d deliveries; each is tried again on its own", riders+1)
	if out.Detail != "" {
		note = out.Detail + "; " + note
	}
	out.Detail = note
	return out, true
}

// DecideCarried is the finish of rider r, carried by the send whose head
// finished as head, with outcome out. It is decided as if r had been sent
// alone with that outcome, under r's route policy p, except that a retry
// falls when the head's does (the rider cannot go before its head, and
// rides again with it when both are due), unless that is past r's max_age:
// then r ends now, as Decide ends a delivery whose retry would be too late.
func DecideCarried(head store.Finish, r store.Claimed, out relay.Outcome, p Policy, retry RetryPolicy, now time.Time, rnd float64) store.Finish {
	f := Decide(r, out, p, retry, now, rnd)
	if f.State != relay.StatePending || head.State != relay.StatePending {
		return f
	}
	return retryAt(f, head.NextAttemptAt, r.QueuedAt, p, f.LastError)
}

// Sections splits a message made by Coalesce back into its texts, oldest
// first; ok is false when body is not such a message. It is for tools and
// tests that match what a recipient received to deliveries: a text that
// itself holds a separator line would split wrongly.
func Sections(body string) (texts []string, ok bool) {
	var n int
	if _, err := fmt.Sscanf(body, coalesceHeader, &n); err != nil || n < 1 {
		return nil, false
	}
	rest, found := strings.CutPrefix(body, fmt.Sprintf(coalesceHeader, n))
	if !found {
		return nil, false
	}
	for i := 1; i <= n; i++ {
		if rest, found = strings.CutPrefix(rest, fmt.Sprintf(coalesceSeparator, i, n)); !found {
			return nil, false
		}
		text := rest
		if i < n {
			j := strings.Index(rest, fmt.Sprintf(coalesceSeparator, i+1, n))
			if j < 0 {
				return nil, false
			}
			text = rest[:j]
		}
		texts = append(texts, text)
		rest = rest[len(text):]
	}
	return texts, true
}
