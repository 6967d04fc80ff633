package ucwasim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RetryAfterTolerance is how much earlier than its Retry-After a request
// may arrive before it is a "retry-before-retry-after" violation: room for
// clock granularity and scheduling noise, not for a client that ignores
// the header.
const RetryAfterTolerance = 50 * time.Millisecond

// maxRetryAfters bounds the remembered Retry-After deadlines; past it the
// ones already over are forgotten.
const maxRetryAfters = 4096

// retryKey names what a Retry-After answer covers: one listener ("internal",
// "external" or a pool name), one method, one path without query.
type retryKey struct{ host, method, path string }

// retryDeadline is one Retry-After answer: until is the instant before
// which the client must not ask again, answered when it was given.
type retryDeadline struct{ answered, until time.Time }

// retryAfters remembers, per retryKey, the latest Retry-After given.
type retryAfters struct {
	mu sync.Mutex
	m  map[retryKey]retryDeadline
}

// note records that the answer being written now carries Retry-After
// value. Unparseable values and dates in the past set no deadline.
func (ra *retryAfters) note(k retryKey, value string) {
	now := time.Now()
	until, ok := parseRetryAfter(value, now)
	if !ok || !until.After(now) {
		return
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.m == nil {
		ra.m = map[retryKey]retryDeadline{}
	}
	if len(ra.m) >= maxRetryAfters {
		for key, d := range ra.m {
			if !d.until.After(now) {
				delete(ra.m, key)
			}
		}
	}
	ra.m[k] = retryDeadline{answered: now, until: until}
}

// early reports how long before its Retry-After a request that arrived at
// arrived came, beyond RetryAfterTolerance; 0 when it was on time. A
// request that arrived before the Retry-After answer was written was sent
// before the client could read it and is not early. A deadline that has
// passed is forgotten.
func (ra *retryAfters) early(k retryKey, arrived time.Time) time.Duration {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	d, ok := ra.m[k]
	if !ok || arrived.Before(d.answered) {
		return 0
	}
	if !arrived.Before(d.until) {
		delete(ra.m, k)
		return 0
	}
	if left := d.until.Sub(arrived); left > RetryAfterTolerance {
		return left
	}
	return 0
}

// parseRetryAfter reads delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return time.Time{}, false
		}
		return now.Add(time.Duration(n) * time.Second), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// checkRetryAfter records a violation when a request arrives at a
// (host, method, path) before the Retry-After the server last answered
// there. The request is served as usual either way.
func (s *Sim) checkRetryAfter(host string, r *http.Request, arrived time.Time) {
	if left := s.retry.early(retryKey{host, r.Method, r.URL.Path}, arrived); left > 0 {
		s.violation(r.Method, r.URL.Path, "retry-before-retry-after",
			fmt.Sprintf("%dms before Retry-After", left.Milliseconds()))
	}
}
