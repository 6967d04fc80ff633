// Package backoff computes how long to wait before trying again: a delay
// that starts at Min, doubles with every failure in a row up to Max, and is
// spread by a jitter so that many clients failing together do not retry
// together. Every retry loop in relay takes its delays from here.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff. The zero Policy waits nothing.
type Policy struct {
	// Min is the delay after the first failure.
	Min time.Duration
	// Max caps the delay (before jitter). Zero means Min.
	Max time.Duration
	// Jitter spreads each delay by up to this fraction either way (0 to 1).
	Jitter float64
}

// At returns the delay after failure number n (0 for the first failure),
// with rnd in [0, 1) placing the jitter: 0.5 is the unjittered delay. It is
// a pure function, for tests and for schedules kept in a database.
func (p Policy) At(n int, rnd float64) time.Duration {
	hi := max(p.Max, p.Min)
	d := p.Min
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if j := min(max(p.Jitter, 0), 1); j > 0 {
		d = time.Duration(float64(d) * (1 + j*(2*rnd-1)))
	}
	return max(d, 0)
}

// Delay is At with a random jitter.
func (p Policy) Delay(n int) time.Duration { return p.At(n, rand.Float64()) }

// Sleep waits d or until ctx ends, and reports whether it waited all of d.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Counter is the failure count of one retry loop: Next returns the delay
// before the next try and counts the failure, Reset starts over after a
// success. It is not safe for concurrent use.
type Counter struct {
	Policy Policy
	n      int
}

// Next counts a failure and returns the delay before the next try.
func (c *Counter) Next() time.Duration {
	d := c.Policy.Delay(c.n)
	c.n++
	return d
}

// Failures is the number of failures in a row so far.
func (c *Counter) Failures() int { return c.n }

// Reset forgets the failures after a success.
func (c *Counter) Reset() { c.n = 0 }
