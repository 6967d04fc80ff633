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
type tokenSource struct {
	c *Client

	mu       sync.Mutex
	endpoint *url.URL // MsRtcOAuth href
	token    string   // "cwt=..."
	renewAt  time.Time
	expires  time.Time
}

func newTokenSource(c *Client) *tokenSource { return &tokenSource{c: c} }

// current returns the token to send, renewing it first when due. An empty
// token with a nil error means none was issued yet: the request will draw
// the 401 challenge.
func (t *tokenSource) current(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.token != "" && now.Before(t.renewAt) {
		return t.token, nil
	}
	if t.endpoint == nil {
		return t.token, nil
	}
	tok, err := t.acquireLocked(ctx)
	if err != nil && t.token != "" && now.Before(t.expires) {
		t.c.log.WarnContext(ctx, "token renewal failed; keeping the current token", "err", err)
		return t.token, nil
	}
	return tok, err
}

// refresh gets a new token after stale was refused with ch. When another
// request already renewed it, the newer token is returned without a POST.
func (t *tokenSource) refresh(ctx context.Context, stale string, ch *challenge) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.token != stale {
		return t.token, nil
	}
	if ch != nil {
		u, err := url.Parse(ch.href)
		if err != nil || !u.IsAbs() {
			return "", errors.New("token endpoint in challenge is not an absolute URL")
		}
		if !t.c.hc.isAllowed(u) {
			return "", fmt.Errorf("token endpoint host %s is not in AllowedHosts", u.Host)
		}
		if !secureFor(u) {
			return "", fmt.Errorf("token endpoint %s://%s is plain http on a host that is not loopback: the password is sent only over https", u.Scheme, u.Host)
		}
		if len(ch.grants) > 0 && !contains(ch.grants, "password") {
			return "", fmt.Errorf("token endpoint on %s does not offer the password grant", u.Host)
		}
		t.endpoint = u
	}
	if t.endpoint == nil {
		return "", errors.New("no token endpoint known")
	}
	return t.acquireLocked(ctx)
}

// tokenAnswer is the token endpoint's JSON (PROTOCOL §2.2).
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Error       string `json:"error"`
}

func (t *tokenSource) acquireLocked(ctx context.Context) (string, error) {
	form := url.Values{
		"grant_type": {"password"},
		"username":   {t.c.cfg.Username},
		"password":   {t.c.cfg.Password},
	}
	resp, err := t.c.hc.roundTrip(ctx, &request{
		method: http.MethodPost, url: t.endpoint, resource: resToken,
		ctype: "application/x-www-form-urlencoded", body: []byte(form.Encode()),
		timeout: t.c.timers.Request,
	})
	if err != nil {
		return "", fmt.Errorf("request token: %w", err)
	}
	var a tokenAnswer
	if resp.status != http.StatusOK {
		_ = decodeJSON(resp.body, &a)
		code := a.Error
		if !isWord(code) {
			code = ""
		}
		return "", fmt.Errorf("request token on %s: http %d %s", t.endpoint.Host, resp.status, code)
	}
	if err := decodeJSON(resp.body, &a); err != nil {
		return "", fmt.Errorf("request token on %s: decode answer: %w", t.endpoint.Host, err)
	}
	if a.AccessToken == "" || len(a.AccessToken) > 16<<10 || strings.ContainsAny(a.AccessToken, "\r\n") {
		return "", fmt.Errorf("request token on %s: answer has no usable access_token", t.endpoint.Host)
	}
	life := time.Duration(a.ExpiresIn) * time.Second
	if a.ExpiresIn <= 0 || a.ExpiresIn > 7*24*3600 {
		life = time.Hour
	}
	now := time.Now()
	t.token = a.AccessToken
	t.expires = now.Add(life)
	t.renewAt = now.Add(time.Duration(float64(life) * t.c.timers.TokenRenewFraction))
	t.c.log.DebugContext(ctx, "token issued", "pool", t.endpoint.Host, "expires_in_s", a.ExpiresIn)
	return t.token, nil
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
