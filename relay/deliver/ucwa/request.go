package ucwa

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

var (
	errThrottled   = errors.New("throttled: waiting for Retry-After")
	errSessionGone = errors.New("session is gone")
)

// do sends one authenticated UCWA request on the session and reads the
// answer. It
//   - waits for a request slot (the event channel, pget, takes none);
//   - renews the token when due, and on 401 gets a new one once and
//     replays (a 401 request was not processed); a second 401 is returned;
//   - honours a Retry-After the server gave on an earlier 429/503;
//   - reports session-level trouble (§8.7: re-create the application,
//     failover, stop) to the supervisor by failing the session.
//
// Any non-2xx answer comes back as *apiError, together with the response.
func (s *session) do(ctx context.Context, method string, u *url.URL, resource, ctype string, body []byte, pget bool) (*response, error) {
	timeout := s.c.timers.Request
	limit := int64(maxBody)
	if pget {
		timeout = s.c.timers.EventTimeout + s.c.timers.EventSlack
		limit = maxEventBody
	} else if until := s.throttleUntilNano.Load(); until != 0 {
		if wait := time.Until(time.Unix(0, until)); wait > 0 {
			return nil, &apiError{Resource: resource, Host: u.Host, Err: errThrottled, NotSent: true, RetryAfter: wait}
		}
	}
	if !pget && s.isDead() {
		return nil, &apiError{Resource: resource, Host: u.Host, Err: errSessionGone, NotSent: true}
	}
	if !s.c.hc.isAllowed(u) {
		return nil, &apiError{Resource: resource, Host: u.Host, Status: http.StatusForbidden,
			Err: errors.New("link points to a host outside AllowedHosts")}
	}
	for attempt := 0; ; attempt++ {
		tok, err := s.tok.current(ctx)
		if err != nil {
			return nil, &apiError{Resource: resource, Host: u.Host, Status: http.StatusUnauthorized, Err: err}
		}
		if !pget {
			select {
			case s.c.sem <- struct{}{}:
			case <-ctx.Done():
				return nil, &apiError{Resource: resource, Host: u.Host, Err: ctx.Err(), NotSent: true}
			}
		}
		resp, err := s.c.hc.roundTrip(ctx, &request{method: method, url: u, resource: resource,
			ctype: ctype, body: body, token: tok, timeout: timeout, limit: limit})
		if !pget {
			<-s.c.sem
		}
		if err != nil {
			if ctx.Err() == nil {
				s.noteTransportFailure(resource)
			}
			return nil, err
		}
		if resp.status == http.StatusUnauthorized && attempt == 0 {
			ch, _ := parseChallenge(resp.header)
			if _, err := s.tok.refresh(ctx, tok, ch); err != nil {
				ae := &apiError{Resource: resource, Host: u.Host, Status: http.StatusUnauthorized, Err: err}
				s.noteHTTPFailure(ae)
				return nil, ae
			}
			continue
		}
		if resp.status >= 200 && resp.status < 300 {
			s.consecFail.Store(0)
			return resp, nil
		}
		ae := httpError(resource, resp, time.Now())
		s.noteHTTPFailure(ae)
		return resp, ae
	}
}

// noteTransportFailure counts connection failures; FailoverAfter of them
// in a row start the failover procedure (§9.4).
func (s *session) noteTransportFailure(resource string) {
	if n := s.consecFail.Add(1); int(n) >= s.c.cfg.FailoverAfter {
		s.fail(actFailover, ReasonNetwork, "", resource+": repeated connection failures")
	}
}

// noteHTTPFailure applies the session-level half of the decision matrix.
func (s *session) noteHTTPFailure(e *apiError) {
	act, reason := classify(e)
	switch act {
	case actRecreateApp, actFailover, actStop:
		s.fail(act, reason, e.Subcode, e.Error())
		return
	case actReauth:
		// A fresh token refused as well. Once can be a token that expired
		// while a long poll was held; FailoverAfter in a row opens the
		// circuit: forget the pool and its token endpoint, rediscover.
		if n := s.consecFail.Add(1); int(n) >= s.c.cfg.FailoverAfter {
			s.fail(actFailover, ReasonAuth, "", "fresh tokens refused repeatedly")
		}
		return
	}
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		n := s.consecFail.Add(1)
		if e.Status == http.StatusServiceUnavailable && int(n) >= s.c.cfg.FailoverAfter {
			s.fail(actFailover, ReasonThrottled, e.Subcode, "repeated 503 answers")
			return
		}
		wait := e.RetryAfter
		if wait == 0 {
			wait = backoff(s.c.timers.RetryMin, s.c.timers.RetryMax, int(n)-1)
		}
		wait = clamp(wait, s.c.timers.RetryMin, s.c.timers.RetryMax)
		e.RetryAfter = wait
		s.throttleUntilNano.Store(time.Now().Add(wait).UnixNano())
	}
}
