package ucwa

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/skype-relay/relay/relay/backoff"
)

// The phases of a long failure (PROTOCOL §9.4 step 3, revised): pauses stay
// short for the first shortPhase so that a pool that comes back, or a
// backup that is ready, is used within seconds; they grow after that, and
// reach FailoverMax only once the failure lasted longPhase. pageAfter is
// when the failure is logged at error level for the operators (§9.4 step 9).
const (
	shortPhase = 2 * time.Minute
	longPhase  = 15 * time.Minute
	pageAfter  = 15 * time.Minute
)

// failRun is a failover procedure under way: when the first failure came
// and how many rebuilds failed since. The zero value is "not failing".
type failRun struct {
	since  time.Time
	n      int
	paged  bool
	reason Reason
}

func (r *failRun) active() bool { return !r.since.IsZero() }

// holdDelay is the pause before the next rebuild (rediscovery) of a
// failover procedure that has been failing for elapsed, after n pauses
// (0 for the first), with rnd in [0, 1) placing the jitter. With the
// default timers (FailoverMin 1 s, FailoverMax 5 min):
//
//   - first 2 minutes: 1 s ±50%, then 2 s, then 4 s (±50%, never more than
//     4 s): with the rebuild, a pool that comes back is used again within
//     5 s;
//   - until 15 minutes: the time failed since the 2-minute mark, between
//     5 s and 60 s (±20%): doubling, 5, 5, 10, 20, 40, 60 s;
//   - after 15 minutes: likewise from 60 s up to FailoverMax.
//
// The server's Retry-After, when the failure carried one, is waited at
// least (up to FailoverMax). Every bound scales with FailoverMin (4×, 5×
// and 60× it) and none exceeds FailoverMax.
func holdDelay(elapsed time.Duration, n int, retryAfter time.Duration, t Timers, rnd float64) time.Duration {
	lo := t.FailoverMin
	hi := max(t.FailoverMax, lo)
	quick := min(4*lo, hi)
	short := min(5*lo, hi)
	long := min(60*lo, hi)
	var d time.Duration
	switch {
	case elapsed < shortPhase:
		d = min(backoff.Policy{Min: lo, Max: quick, Jitter: 0.5}.At(n, rnd), quick)
	case elapsed < longPhase:
		d = jitterWithin(elapsed-shortPhase, short, long, rnd)
	default:
		d = jitterWithin(elapsed-longPhase, long, hi, rnd)
	}
	return max(d, min(retryAfter, hi))
}

// jitterWithin spreads d, first kept within [lo, hi], by ±20%, and keeps
// the result within [lo/2, hi].
func jitterWithin(d, lo, hi time.Duration, rnd float64) time.Duration {
	d = max(lo, min(d, hi))
	return max(lo/2, min(backoff.Policy{Min: d, Jitter: 0.2}.At(0, rnd), hi))
}

// hold publishes the failing-over state and pauses before the next
// rebuild. It reports false when ctx ended during the pause.
func (c *Client) hold(ctx context.Context, run *failRun, gen uint64, reason Reason, detail string, retryAfter time.Duration) bool {
	now := time.Now()
	if !run.active() {
		run.since = now
	}
	elapsed := now.Sub(run.since)
	delay := holdDelay(elapsed, run.n, retryAfter, c.timers, rand.Float64())
	run.n++
	if !run.paged && elapsed >= pageAfter {
		run.paged = true
		c.log.ErrorContext(ctx, "ucwa session failing for a long time: messages are queued, none is sent",
			"failing_for", elapsed.Round(time.Second).String(), "reason", string(reason), "detail", detail)
	}
	if reason != run.reason {
		c.log.InfoContext(ctx, "ucwa failover procedure pausing", "reason", string(reason), "delay", delay.String(), "attempt", run.n)
		run.reason = reason
	}
	c.publish(sessState{phase: phaseHolding, gen: gen, holdUntil: now.Add(delay), reason: reason, detail: detail})
	return backoff.Sleep(ctx, delay)
}

// lossOf turns a failed discovery or application creation into what the
// supervisor does about it.
func (c *Client) lossOf(err error) loss {
	l := loss{act: actFailover, reason: ReasonFailover, detail: err.Error()}
	var ae *apiError
	isAPI := errors.As(err, &ae)
	switch {
	case errors.Is(err, errHostNotAllowed), errors.Is(err, errInsecureLink):
		l.reason = ReasonHostNotAllowed
	case credentialsRefused(err):
		l.act, l.reason = actStop, ReasonStopped
		l.detail = "the token endpoint refuses the account's credentials: " + err.Error()
	case errors.Is(err, errTokenRefused), isAPI && ae.TokenRefused:
		l.reason = ReasonAuth
		if n := c.authRefusals.Load(); n >= maxAuthRefusals {
			l.act, l.reason = actStop, ReasonStopped
			l.detail = fmt.Sprintf("fresh tokens refused %d times in a row: %v", n, err)
		}
	case isAPI:
		l.act, l.reason = classify(ae)
		l.subcode, l.retryAfter = ae.Subcode, ae.RetryAfter
		if l.act != actStop {
			l.act = actFailover // whatever failed, the next try starts from discovery
		}
	}
	return l
}

// stop ends the supervisor for good: Sends return "stopped" from now on,
// Stopped is closed and Err says why. Logged once, at error level.
func (c *Client) stop(ctx context.Context, gen uint64, detail string) {
	c.log.ErrorContext(ctx, "ucwa client stopped: no more messages are sent for this account", "detail", detail)
	c.stopErr = fmt.Errorf("%w: %s", ErrStopped, detail)
	c.publish(sessState{phase: phaseStopped, gen: gen, reason: ReasonStopped, detail: detail})
	close(c.stopped)
}
