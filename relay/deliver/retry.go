package deliver

import (
	"time"

	"github.com/skype-relay/relay/relay/backoff"
)

// RetryPolicy decides when a failed delivery is tried again. Its Next is a
// pure function of the attempt number, the time and a jitter value, so the
// schedule is easy to reason about and to test.
type RetryPolicy struct {
	// Base is the delay after the first failure (default 2s); each further
	// attempt doubles it.
	Base time.Duration
	// Max caps the delay (default 5m).
	Max time.Duration
	// Jitter spreads delays by up to this fraction either way (default 0.2),
	// so many deliveries failing together do not retry together.
	Jitter float64
	// RetryAfterMax clamps a server's Retry-After (default 10m).
	RetryAfterMax time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = 2 * time.Second
	}
	if p.Max <= 0 {
		p.Max = 5 * time.Minute
	}
	if p.Jitter < 0 || p.Jitter >= 1 {
		p.Jitter = 0
	} else if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	if p.RetryAfterMax <= 0 {
		p.RetryAfterMax = 10 * time.Minute
	}
	return p
}

// Next returns when to try again after attempt number attempt (1 for the
// first) failed at now. A positive retryAfter (the server's or the
// client's suggestion) is honoured, clamped to RetryAfterMax; otherwise the
// delay grows exponentially from Base up to Max. rnd in [0, 1) places the
// jitter.
func (p RetryPolicy) Next(now time.Time, attempt int, retryAfter time.Duration, rnd float64) time.Time {
	p = p.withDefaults()
	if retryAfter > 0 {
		return now.Add(min(retryAfter, p.RetryAfterMax))
	}
	d := backoff.Policy{Min: p.Base, Max: p.Max, Jitter: p.Jitter}.At(max(attempt, 1)-1, rnd)
	return now.Add(max(d, time.Millisecond))
}

// Policy is what a route decides about its deliveries.
type Policy struct {
	// MaxAttempts caps the tries that failed because of the message or its
	// recipient (session trouble does not count); then the delivery is
	// dead. Default 10.
	MaxAttempts int
	// MaxAge caps how long a delivery may wait in the queue: a firing alert
	// hours late is noise. Default 2h.
	MaxAge time.Duration
	// ResendUncertain: a message the server accepted but never confirmed is
	// sent again, marked "(resent)" (default). When false it is left
	// uncertain: for alerts where a duplicate is worse than a miss.
	ResendUncertain bool
	// MaxResends caps those resends (default 2): a delivery whose sends
	// went unconfirmed more often ends uncertain. A try cut short by a
	// crash or a lost session lease counts as one.
	MaxResends int
	// Supersede: a firing notification still queued when its group resolves
	// is replaced by the resolved message, which says so (default).
	Supersede bool
	// Coalesce: when more than CoalesceAfter deliveries wait for one
	// recipient, the next send carries as many of them as fit in one
	// message of MaxMessageBytes, oldest first, under a one-line header
	// (default). Each keeps its own outcome and attempt record.
	Coalesce      bool
	CoalesceAfter int
	// MaxMessageBytes caps a coalesced message (ingest.max_message_bytes).
	MaxMessageBytes int
}

// DefaultPolicy is the policy of a route that sets nothing.
func DefaultPolicy() Policy {
	return Policy{MaxAttempts: 10, MaxAge: 2 * time.Hour, ResendUncertain: true, MaxResends: 2, Supersede: true,
		Coalesce: true, CoalesceAfter: 3, MaxMessageBytes: 8 << 10}
}
