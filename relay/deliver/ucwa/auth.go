package ucwa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/skype-relay/relay/relay/backoff"
)

// challenge is the MsRtcOAuth part of a 401 answer (PROTOCOL §2.1).
type challenge struct {
	href   string
	grants []string
}

// parseChallenge finds the MsRtcOAuth challenge in the WWW-Authenticate
// header lines. It accepts one line per challenge or both on one line, and
// quoted or bare values.
func parseChallenge(h http.Header) (*challenge, bool) {
	for _, line := range h.Values("WWW-Authenticate") {
		if ch, ok := parseChallengeLine(line); ok {
			return ch, true
		}
	}
	return nil, false
}

func parseChallengeLine(line string) (*challenge, bool) {
	lower := strings.ToLower(line)
	const scheme = "msrtcoauth"
	i := 0
	for {
		j := strings.Index(lower[i:], scheme)
		if j < 0 {
			return nil, false
		}
		j += i
		end := j + len(scheme)
		before := j == 0 || line[j-1] == ' ' || line[j-1] == ',' || line[j-1] == '\t'
		after := end == len(line) || line[end] == ' ' || line[end] == '\t'
		if before && after {
			i = end
			break
		}
		i = end
	}
	ch := &challenge{}
	rest := line[i:]
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			break
		}
		eq := strings.IndexByte(rest, '=')
		sp := strings.IndexAny(rest, " \t,")
		if eq < 0 || (sp >= 0 && sp < eq) {
			break // the next scheme starts here
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = rest[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			k := strings.IndexByte(rest[1:], '"')
			if k < 0 {
				val, rest = rest[1:], ""
			} else {
				val, rest = rest[1:1+k], rest[2+k:]
			}
		} else {
			k := strings.IndexAny(rest, " \t,")
			if k < 0 {
				val, rest = rest, ""
			} else {
				val, rest = rest[:k], rest[k:]
			}
		}
		switch key {
		case "href":
			ch.href = val
		case "grant_type":
			for _, g := range strings.Split(val, ",") {
				if g = strings.TrimSpace(g); g != "" {
					ch.grants = append(ch.grants, g)
				}
			}
		}
	}
	return ch, ch.href != ""
}

// tokenSource holds the bearer token for one pool and renews it: before
// expiry (at TokenRenewFraction of expires_in, checked on every request, and
// the event channel makes a request at least every EventTimeout) and on 401.
// Renewal runs the password grant again; on-premises has no refresh token.
//
// One token request is in flight at a time. It runs in a goroutine of its
// own, owned by the Client, and no lock is held across it: callers that
// need its result wait with their own context and give up when theirs
// ends, while the request goes on for the others. A token past its renewal
// time but not expired is used while the renewal runs in the background,
// so nobody waits for a renewal it does not need.
type tokenSource struct {
	c *Client

	mu       sync.Mutex
	endpoint *url.URL // MsRtcOAuth href
	token    string   // "cwt=..."
	renewAt  time.Time
	expires  time.Time
	flight   *tokenFlight // the token request in flight, nil when none
	// After a failed token request no other is made before retryAt; until
	// then callers without a usable token get lastErr.
	failures int
	retryAt  time.Time
	lastErr  error
	// fatal is the token endpoint's refusal of the credentials: no token
	// request is ever made again with this source.
	fatal error
}

// tokenFlight is one token request; done is closed when tok or err is set.
type tokenFlight struct {
	done chan struct{}
	tok  string
	err  error // a *flightError when set
}

// flightError is a failed token request as every caller that waited for it,
// or asked before the next one could be made, gets it: one value per
// request, so that the session counts it once (see session.failed).
type flightError struct{ err error }

func (e *flightError) Error() string { return e.err.Error() }
func (e *flightError) Unwrap() error { return e.err }

func newTokenSource(c *Client) *tokenSource { return &tokenSource{c: c} }

// current returns the token to send. An empty token with a nil error means
// none was issued yet: the request will draw the 401 challenge.
func (t *tokenSource) current(ctx context.Context) (string, error) {
	t.mu.Lock()
	now := time.Now()
	switch {
	case t.fatal != nil:
		err := t.fatal
		t.mu.Unlock()
		return "", err
	case t.endpoint == nil, t.token != "" && now.Before(t.renewAt):
		tok := t.token
		t.mu.Unlock()
		return tok, nil
	case t.token != "" && now.Before(t.expires):
		// Due for renewal but still valid: renew in the background.
		if !now.Before(t.retryAt) {
			t.startLocked()
		}
		tok := t.token
		t.mu.Unlock()
		return tok, nil
	}
	f, err := t.flightLocked(now)
	t.mu.Unlock()
	if err != nil {
		return "", err
	}
	return t.await(ctx, f)
}

// refresh gets a new token after stale was refused with ch. When another
// request already renewed it, the newer token is returned without a POST;
// when a token request is in flight, its answer is awaited.
func (t *tokenSource) refresh(ctx context.Context, stale string, ch *challenge) (string, error) {
	t.mu.Lock()
	if t.fatal != nil {
		err := t.fatal
		t.mu.Unlock()
		return "", err
	}
	if t.token != "" && t.token != stale {
		tok := t.token
		t.mu.Unlock()
		return tok, nil
	}
	if ch != nil {
		u, err := t.checkEndpoint(ch)
		if err != nil {
			t.mu.Unlock()
			return "", err
		}
		if t.endpoint == nil || *u != *t.endpoint {
			t.endpoint = u
			t.retryAt, t.lastErr = time.Time{}, nil // a new endpoint gets a fresh try
		}
	}
	if t.endpoint == nil {
		t.mu.Unlock()
		return "", errors.New("no token endpoint known")
	}
	f, err := t.flightLocked(time.Now())
	t.mu.Unlock()
	if err != nil {
		return "", err
	}
	return t.await(ctx, f)
}

// checkEndpoint validates the token endpoint a challenge names: the
// password goes only to allowed hosts, over https or to loopback (§2.3).
func (t *tokenSource) checkEndpoint(ch *challenge) (*url.URL, error) {
	u, err := url.Parse(ch.href)
	if err != nil || !u.IsAbs() {
		return nil, errors.New("token endpoint in challenge is not an absolute URL")
	}
	if !t.c.hc.isAllowed(u) {
		return nil, fmt.Errorf("token endpoint %s: %w", u.Host, errHostNotAllowed)
	}
	if !secureFor(u) {
		return nil, fmt.Errorf("token endpoint %s://%s: the password is sent only over https: %w", u.Scheme, u.Host, errInsecureLink)
	}
	if len(ch.grants) > 0 && !contains(ch.grants, "password") {
		return nil, fmt.Errorf("token endpoint on %s does not offer the password grant", u.Host)
	}
	return u, nil
}

// flightLocked returns the token request in flight, starting one unless
// the last one failed too recently.
func (t *tokenSource) flightLocked(now time.Time) (*tokenFlight, error) {
	if t.flight == nil && now.Before(t.retryAt) && t.lastErr != nil {
		return nil, t.lastErr
	}
	return t.startLocked(), nil
}

// startLocked starts a token request unless one is in flight, and returns
// it. The request runs under the Client's context, not a caller's.
func (t *tokenSource) startLocked() *tokenFlight {
	if t.flight != nil {
		return t.flight
	}
	f := &tokenFlight{done: make(chan struct{})}
	t.flight = f
	endpoint := t.endpoint
	if !t.c.goBackground(func(ctx context.Context) { t.finish(f, t.c.requestToken(ctx, endpoint)) }) {
		t.flight = nil
		f.err = ErrClosed
		close(f.done)
	}
	return f
}

// finish records a token request's result and wakes its waiters.
func (t *tokenSource) finish(f *tokenFlight, a tokenResult) {
	now := time.Now()
	var ferr error
	if a.err != nil {
		ferr = &flightError{err: a.err}
	}
	t.mu.Lock()
	t.flight = nil
	if a.err == nil {
		t.token = a.token
		t.expires = now.Add(a.life)
		t.renewAt = now.Add(time.Duration(float64(a.life) * t.c.timers.TokenRenewFraction))
		t.failures, t.retryAt, t.lastErr = 0, time.Time{}, nil
	} else {
		if credentialsRefused(a.err) {
			t.fatal = ferr
		}
		t.retryAt = now.Add(backoff.Policy{Min: t.c.timers.RetryMin, Max: t.c.timers.RetryMax, Jitter: 0.2}.Delay(t.failures))
		t.failures++
		t.lastErr = ferr
	}
	valid := t.token != "" && now.Before(t.expires)
	t.mu.Unlock()
	f.tok, f.err = a.token, ferr
	close(f.done)
	if a.err != nil && valid && !credentialsRefused(a.err) {
		t.c.log.Warn("token renewal failed; keeping the current token", "err", a.err)
	}
}

// await waits for f with the caller's own context.
func (t *tokenSource) await(ctx context.Context, f *tokenFlight) (string, error) {
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// tokenAnswer is the token endpoint's JSON (PROTOCOL §2.2).
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Error       string `json:"error"`
}

// tokenResult is what one token request yields.
type tokenResult struct {
	token string
	life  time.Duration
	err   error
}

// requestToken runs the password grant against endpoint (PROTOCOL §2.2).
func (c *Client) requestToken(ctx context.Context, endpoint *url.URL) tokenResult {
	form := url.Values{
		"grant_type": {"password"},
		"username":   {c.cfg.Username},
		"password":   {c.cfg.Password},
	}
	resp, err := c.hc.roundTrip(ctx, &request{
		method: http.MethodPost, url: endpoint, resource: resToken,
		ctype: "application/x-www-form-urlencoded", body: []byte(form.Encode()),
		timeout: c.timers.Request, wait: true,
	})
	if err != nil {
		return tokenResult{err: fmt.Errorf("request token: %w", err)}
	}
	var a tokenAnswer
	if resp.status != http.StatusOK {
		_ = decodeJSON(resp.body, &a)
		code := a.Error
		if !isWord(code) {
			code = ""
		}
		return tokenResult{err: &tokenError{host: endpoint.Host, status: resp.status, code: code}}
	}
	if err := decodeJSON(resp.body, &a); err != nil {
		return tokenResult{err: fmt.Errorf("request token on %s: decode answer: %w", endpoint.Host, err)}
	}
	if a.AccessToken == "" || len(a.AccessToken) > 16<<10 || strings.ContainsAny(a.AccessToken, "\r\n") {
		return tokenResult{err: fmt.Errorf("request token on %s: answer has no usable access_token", endpoint.Host)}
	}
	life := time.Duration(a.ExpiresIn) * time.Second
	if a.ExpiresIn <= 0 || a.ExpiresIn > 7*24*3600 {
		life = time.Hour
	}
	c.log.DebugContext(ctx, "token issued", "pool", endpoint.Host, "expires_in_s", a.ExpiresIn)
	return tokenResult{token: a.AccessToken, life: life}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// isWord reports whether s is a short token such as an OAuth error code,
// safe to repeat in an error.
func isWord(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
