package ucwasim

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// token is one issued access token.
type token struct {
	pool    *pool
	expires time.Time // real time
	revoked atomic.Bool
}

const maxTokenBody = 16 << 10

// serveToken is the WebTicket/oauthtoken endpoint (PROTOCOL §2.2).
func (p *pool) serveToken(w http.ResponseWriter, r *http.Request) {
	tokenErr := func(code, rule, detail string) {
		p.diagHeaders(w.Header(), http.StatusBadRequest, code)
		p.s.violation(r.Method, r.URL.Path, rule, detail)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": code})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		p.s.violation(r.Method, r.URL.Path, "method-not-allowed", "token endpoint takes POST only")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request"})
		return
	}
	if mediaType(r) != "application/x-www-form-urlencoded" {
		tokenErr("invalid_request", "wrong-content-type", "token request must be application/x-www-form-urlencoded")
		return
	}
	body, err := readBody(r, maxTokenBody)
	if err != nil {
		tokenErr("invalid_request", "bad-body", "token request body unreadable or over 16 KiB")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		tokenErr("invalid_request", "bad-body", "token request body is not a valid form")
		return
	}
	switch form.Get("grant_type") {
	case "password":
	case "":
		tokenErr("invalid_request", "bad-body", "grant_type missing")
		return
	default:
		tokenErr("unsupported_grant_type", "unsupported-grant-type", "only the password grant is simulated")
		return
	}
	user := strings.TrimPrefix(strings.ToLower(form.Get("username")), "sip:")
	if user != strings.ToLower(p.s.cfg.Username) || form.Get("password") != p.s.cfg.Password {
		// The detail never repeats the submitted password.
		tokenErr("invalid_grant", "invalid-grant", "username or password does not match the directory")
		return
	}
	value := randToken()
	t := &token{pool: p, expires: time.Now().Add(p.s.scaled(p.s.cfg.TokenLifetime))}
	p.s.mu.Lock()
	p.s.tokens[value] = t
	p.s.mu.Unlock()
	p.s.rec.add(func(rc *recorder) { rc.tokens++ })
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":         value,
		"token_type":           "Bearer",
		"expires_in":           int(p.s.cfg.TokenLifetime / time.Second),
		"ms_rtc_identityscope": "local",
	})
}

// ExpireTokens makes every issued token get the 401 challenge from now on.
// Applications stay alive.
func (s *Sim) ExpireTokens() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, t := range s.tokens {
		t.revoked.Store(true)
	}
}
