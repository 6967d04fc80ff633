package ucwa

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/skype-relay/relay/relay/backoff"
)

// Rate limit for a failing host (PROTOCOL §9.4 step 3): never more than
// about failingRate requests per second, in bursts of at most failingBurst.
const (
	failingRate  = 3.0
	failingBurst = 3.0
)

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
//     its last other answer), a token bucket lets at most failingRate
//     requests per second through. Any other answer lifts it;
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
	notBefore time.Time // no request before this
	failing   int       // failing answers in a row; 0 = healthy
	tokens    float64   // the bucket, used only while failing
	refilled  time.Time
	waiting   int // requests that wait for the gate (they go first)
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

// admit asks to send one request to host now. It returns 0 and takes a
// token when the request may go, else how long to wait before asking again.
// A request that does not wait (a send) leaves a token for each waiting
// one.
func (g *gate) admit(host string, now time.Time, waits bool) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		return 0
	}
	if now.Before(h.notBefore) {
		return h.notBefore.Sub(now)
	}
	if h.failing == 0 {
		return 0
	}
	h.refill(now)
	need := 1.0
	if !waits {
		need += float64(h.waiting)
	}
	if h.tokens >= need {
		h.tokens--
		return 0
	}
	return time.Duration((need - h.tokens) / failingRate * float64(time.Second))
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
// taking a token: 0 when it may go.
func (g *gate) wait(host string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		return 0
	}
	if now.Before(h.notBefore) {
		return h.notBefore.Sub(now)
	}
	if h.failing == 0 {
		return 0
	}
	tokens := min(failingBurst, h.tokens+now.Sub(h.refilled).Seconds()*failingRate)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / failingRate * float64(time.Second))
}

func (h *hostGate) refill(now time.Time) {
	h.tokens = min(failingBurst, h.tokens+now.Sub(h.refilled).Seconds()*failingRate)
	h.refilled = now
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
		// The request that failed took no token: start with the rest of a
		// burst.
		h.tokens, h.refilled = failingBurst-1, now
	}
	h.failing++
}

func (h *hostGate) later(t time.Time) {
	if t.After(h.notBefore) {
		h.notBefore = t
	}
}
