package ucwa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

var errSessionGone = errors.New("session is gone")

// reqFlags modify one request of do.
type reqFlags uint8

const (
	// flagPGet marks the event channel's long poll: no request slot, the
	// long timeout and body limit.
	flagPGet reqFlags = 1 << iota
	// flagWait waits for the host's Retry-After or rate limit instead of
	// failing at once with errThrottled. Sends do not wait (they return
	// RetryLater with the time left); the event channel, the supervisor's
	// requests and the read that confirms a sent message do.
	flagWait
)

// do sends one authenticated UCWA request on the session and reads the
// answer. It
//   - holds one of the account's request slots while the request is in
//     flight, not while it waits for its URL or host (the event channel
//     takes none);
//   - renews the token when due, and on 401 (or 403 InvalidToken) gets a
//     new one once and replays (a refused request was not processed);
//   - leaves politeness to the gate: a host that asked us to wait is not
//     asked again before its Retry-After (see flagWait);
//   - reports session-level trouble (§8.7: re-create the application,
//     failover, stop) to the supervisor by failing the session.
//
// Any non-2xx answer comes back as *apiError, together with the response;
// so do refusals and transport errors, without one.
func (s *session) do(ctx context.Context, method string, u *url.URL, resource, ctype string, body []byte, flags reqFlags) (*response, error) {
	pget := flags&flagPGet != 0
	timeout := s.c.timers.Request
	limit := int64(maxBody)
	if pget {
		timeout = s.c.timers.EventTimeout + s.c.timers.EventSlack
		limit = maxEventBody
	}
	if !pget && s.isDead() {
		return nil, &apiError{Resource: resource, Host: u.Host, Err: errSessionGone, NotSent: true}
	}
	for attempt := 0; ; attempt++ {
		tok, err := s.tok.current(ctx)
		if err != nil {
			return nil, s.failed(ctx, &apiError{Resource: resource, Host: u.Host, Err: err, NotSent: true})
		}
		rq := &request{method: method, url: u, resource: resource,
			ctype: ctype, body: body, token: tok, timeout: timeout, limit: limit, wait: flags&flagWait != 0}
		if !pget {
			rq.slots = s.c.sem
		}
		resp, err := s.c.hc.roundTrip(ctx, rq)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = &apiError{Resource: resource, Host: u.Host, Err: err}
			}
			return nil, s.failed(ctx, ae)
		}
		if tokenRejected(resp) {
			if attempt == 0 {
				ch, _ := parseChallenge(resp.header)
				if _, err := s.tok.refresh(ctx, tok, ch); err != nil {
					return nil, s.failed(ctx, &apiError{Resource: resource, Host: u.Host, Err: err, NotSent: true})
				}
				continue
			}
			ae := httpError(resource, resp, time.Now())
			ae.TokenRefused = true
			s.c.refuseToken(tok)
			return resp, s.failed(ctx, ae)
		}
		if resp.status >= 200 && resp.status < 300 {
			s.succeeded()
			return resp, nil
		}
		ae := httpError(resource, resp, time.Now())
		if ae.RetryAfter == 0 && (ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable) {
			ae.RetryAfter = s.c.hc.gate.wait(u.Host, time.Now()) // the gate's own pause
		}
		return resp, s.failed(ctx, ae)
	}
}

// tokenRejected reports whether the server refused the request's token:
// the 401 challenge (§2.3), or Skype for Business Online's 403 with a
// Warning naming InvalidToken.
func tokenRejected(r *response) bool {
	switch r.status {
	case http.StatusUnauthorized:
		return true
	case http.StatusForbidden:
		return strings.Contains(r.header.Get("Warning"), "InvalidToken")
	}
	return false
}

// succeeded notes an accepted request: every run of trouble ends.
func (s *session) succeeded() {
	s.c.authRefusals.Store(0)
	s.runMu.Lock()
	s.transport, s.unavailable = 0, 0
	s.runMu.Unlock()
}

// failed applies the session-level half of the decision matrix to a failed
// request and returns e. Some failures end the session at once
// (re-create, failover, stop); runs of others do: FailoverAfter transport
// failures in a row, or a 503 storm of at least FailoverAfter answers that
// lasted Timers.StormFailover (a shorter storm is throttling, handled by
// the gate). A fresh token refused fails over, and maxAuthRefusals tokens
// refused in a row (counted by do, once per token) stop the client.
//
// A failed token request reaches every request that waited for it, and
// every one that asks before the next may be made, as the same error: it
// counts once toward the run of connection failures.
func (s *session) failed(ctx context.Context, e *apiError) *apiError {
	if errors.Is(e.Err, errSessionGone) || (e.Status == 0 && ctx.Err() != nil) {
		return e // our own doing, nothing about the server
	}
	act, reason := classify(e)
	if e.TokenRefused {
		n := s.c.authRefusals.Load()
		if n >= maxAuthRefusals {
			s.fail(loss{act: actStop, reason: ReasonStopped,
				detail: fmt.Sprintf("fresh tokens refused %d times in a row: %v", n, e)})
		} else {
			s.fail(loss{act: actFailover, reason: ReasonAuth, detail: e.Error(), retryAfter: e.RetryAfter})
		}
		return e
	}
	switch act {
	case actRecreateApp, actFailover, actStop:
		s.fail(loss{act: act, reason: reason, subcode: e.Subcode, detail: e.Error(), retryAfter: e.RetryAfter})
		return e
	}
	now := time.Now()
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if e.Status == 0 {
		var fe *flightError
		if errors.As(e.Err, &fe) {
			if fe == s.tokenFailure {
				return e // counted already
			}
			s.tokenFailure = fe
		}
		if reason == ReasonNetwork || reason == ReasonTimeout {
			s.transport++
			if s.transport >= s.c.cfg.FailoverAfter {
				s.fail(loss{act: actFailover, reason: reason,
					detail: fmt.Sprintf("%d connection failures in a row, the last: %v", s.transport, e)})
			}
		}
		return e
	}
	s.transport = 0
	if e.Status == http.StatusServiceUnavailable {
		if s.unavailable == 0 {
			s.unavailFrom = now
		}
		s.unavailable++
		if lasted := now.Sub(s.unavailFrom); s.unavailable >= s.c.cfg.FailoverAfter && lasted >= s.c.timers.StormFailover {
			s.fail(loss{act: actFailover, reason: ReasonThrottled, subcode: e.Subcode, retryAfter: e.RetryAfter,
				detail: fmt.Sprintf("%d answers 503 over %s with no success between", s.unavailable, lasted.Round(time.Millisecond))})
		}
	}
	return e
}
