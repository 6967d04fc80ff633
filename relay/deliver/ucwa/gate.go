package ucwa

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/skype-relay/relay/relay/backoff"
)

// failingRate limits requests to a failing host (PROTOCOL §9.4 step 3):
// never more than this many in any one second.
const failingRate = 3

// maxRetryAfter bounds the Retry-After the gate honours, against a server
// (or proxy) asking for hours; the delivery worker caps its own wait alike.
const maxRetryAfter = 10 * time.Minute

// gate keeps the client polite to every host it talks to, whatever the
// request (discovery, token, UCWA, event channel):
//
//   - no request before the host's Retry-After, given on any answer
//     (PROTOCOL §8.2, §9.4; up to maxRetryAfter); a 429 or 503 without one
//     waits a short backoff of its own;
//   - while the host is failing (5xx, 429, 410 or transport errors since
//     its last other answer), at most failingRate requests go to it in any
//     one second (a sliding window). Any other answer lifts it;
//   - the requests that keep the session alive and wait for the gate (the
//     event channel, discovery, sign-in, application creation) go first:
//     while one waits, a send takes a token only when one is left over for
//     it, so a throttled host never starves the event channel (a server
//     ends an application whose event channel stays silent);
//   - one request at a time per method and URL (without query): the next
//     waits for the answer to the one before, so it sees that answer's
//     Retry-After. Only invitations share a URL between senders
//     (startMessaging), so this paces new conversations, as §10.4 advises.
//
// It is one per Client, keyed by host[:port]. Safe for concurrent use.
type gate struct {
	busy backoff.Policy // wait after a 429/503 without Retry-After

	mu    sync.Mutex
	hosts map[string]*hostGate
	urls  map[string]*urlSlot // "METHOD host/path" with a request in flight or waiting
}

// urlSlot serializes the requests to one method and URL: a buffered
// channel of one is the lock, and blocked senders are served in order.
type urlSlot struct {
	ch    chan struct{}
	users int // holding or waiting; guarded by gate.mu
}

// hostGate is what the gate knows about one host.
type hostGate struct {
	notBefore time.Time   // no request before this
	failing   int         // failing answers in a row; 0 = healthy
	recent    []time.Time // requests let through in the last second, while failing
	waiting   int         // requests that wait for the gate (they go first)
}

// newGate takes the pause after a 429 or 503 without Retry-After from the
// client's timers: RetryMin, doubling up to five times that (the bucket and
// the failover procedure deal with longer storms, and a storm that ends is
// noticed within seconds).
func newGate(t Timers) *gate {
	return &gate{
		busy:  backoff.Policy{Min: t.RetryMin, Max: min(t.RetryMax, 5*t.RetryMin), Jitter: 0.2},
		hosts: map[string]*hostGate{},
		urls:  map[string]*urlSlot{},
	}
}

// hold waits until no other request to key is in flight, and takes the
// slot; release gives it back. It fails only when ctx ends.
func (g *gate) hold(ctx context.Context, key string) (release func(), err error) {
	g.mu.Lock()
	s := g.urls[key]
	if s == nil {
		s = &urlSlot{ch: make(chan struct{}, 1)}
		g.urls[key] = s
	}
	s.users++
	g.mu.Unlock()
	leave := func() {
		g.mu.Lock()
		if s.users--; s.users == 0 {
			delete(g.urls, key)
		}
		g.mu.Unlock()
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// admit asks to send one request to host now. It returns 0 and counts the
// request when it may go, else how long to wait before asking again. A
// request that does not wait (a send) leaves a place for each waiting one.
func (g *gate) admit(host string, now time.Time, waits bool) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		return 0
	}
	need := 1
	if !waits {
		need += h.waiting
	}
	d := h.delay(now, need)
	if d == 0 && h.failing > 0 {
		h.recent = append(h.recent, now)
	}
	return d
}

// delay is how long a request to h must wait now when need places in the
// failing host's window are wanted: 0 when it may go.
func (h *hostGate) delay(now time.Time, need int) time.Duration {
	if now.Before(h.notBefore) {
		return h.notBefore.Sub(now)
	}
	if h.failing == 0 {
		return 0
	}
	k := 0 // drop what left the window
	for k < len(h.recent) && !h.recent[k].After(now.Add(-time.Second)) {
		k++
	}
	h.recent = h.recent[k:]
	over := len(h.recent) + need - failingRate
	if over <= 0 {
		return 0
	}
	if over > len(h.recent) {
		return time.Second // more waiting requests than places in a second
	}
	return h.recent[over-1].Add(time.Second).Sub(now)
}

// waitTurn counts a request that waits for host's gate until done is
// called, so that sends leave it the next token.
func (g *gate) waitTurn(host string) (done func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		return func() {}
	}
	h.waiting++
	return func() {
		g.mu.Lock()
		h.waiting--
		g.mu.Unlock()
	}
}

// wait reports how long a request to host would have to wait now, without
// counting it: 0 when it may go.
func (g *gate) wait(host string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		return 0
	}
	return h.delay(now, 1)
}

// answer records an HTTP answer from host: its Retry-After (0 for none)
// and whether it says the host is failing.
func (g *gate) answer(host string, status int, retryAfter time.Duration, now time.Time) {
	failing := status >= 500 || status == http.StatusTooManyRequests || status == http.StatusGone
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		if !failing && retryAfter <= 0 {
			return // the common case: a healthy host, nothing to remember
		}
		h = &hostGate{}
		g.hosts[host] = h
	}
	if retryAfter > 0 {
		h.later(now.Add(min(retryAfter, maxRetryAfter)))
	}
	if !failing {
		h.failing = 0
		if !now.Before(h.notBefore) {
			delete(g.hosts, host)
		}
		return
	}
	g.failedLocked(h, now)
	if retryAfter <= 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		h.later(now.Add(g.busy.Delay(h.failing - 1)))
	}
}

// transportFailure records a request to host that got no answer (refused,
// reset, timed out).
func (g *gate) transportFailure(host string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		h = &hostGate{}
		g.hosts[host] = h
	}
	g.failedLocked(h, now)
}

func (g *gate) failedLocked(h *hostGate, now time.Time) {
	if h.failing == 0 {
		// The request that failed was let through while the host was
		// healthy: it counts in the window from now on.
		h.recent = append(h.recent[:0], now)
	}
	h.failing++
}

func (h *hostGate) later(t time.Time) {
	if t.After(h.notBefore) {
		h.notBefore = t
	}
}
