package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/ingest"
)

// Cookies. The session cookie names a row of console_sessions, signed so
// that a forged one costs no database read; the sign-in cookie carries the
// nonce the sign-in form's CSRF token is bound to.
const (
	sessionCookie = "relay_console"
	signInCookie  = "relay_console_signin"
	// maxUserName bounds a user name from a proxy header.
	maxUserName = 128
)

// identity is who a request comes from.
type identity struct {
	user string
	// session is the console session's id; "" for a bearer token.
	session string
	// csrf is the token the session's forms carry.
	csrf string
	// bearer: the API token, presented by a script, not a browser.
	bearer bool
}

// authed runs next for a signed-in request. A request with no sign-in is
// sent to the sign-in page (a GET) or refused (anything else); a POST
// must carry the session's CSRF token.
func (c *Console) authed(next func(http.ResponseWriter, *http.Request, *identity)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := c.identify(w, r)
		switch {
		case errors.Is(err, errBadToken):
			w.Header().Set("WWW-Authenticate", `Bearer realm="relay"`)
			c.fail(w, r, nil, http.StatusUnauthorized, "The bearer token is not relay's API token.")
			return
		case err != nil:
			c.failErr(w, r, nil, err)
			return
		case id == nil && r.Method == http.MethodGet:
			target := "/ui/signin"
			if r.URL.RequestURI() != "/ui/" {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		case id == nil:
			c.fail(w, r, nil, http.StatusForbidden, "You are not signed in (or your session ended), so this was refused. Sign in and try again.")
			return
		}
		if r.Method == http.MethodPost && !id.bearer && !tokenEqual(r.PostFormValue("csrf"), id.csrf) {
			c.fail(w, r, id, http.StatusForbidden, "This form's security token is missing or out of date, so it was refused. Go back, reload the page and try again.")
			return
		}
		next(w, r, id)
	})
}

var errBadToken = errors.New("wrong bearer token")

// identify finds who r comes from: the API token, a reverse proxy's user
// header (which gets a session of its own, for the CSRF token), or a
// session cookie. It returns nil when r has none of them.
func (c *Console) identify(w http.ResponseWriter, r *http.Request) (*identity, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, token, _ := strings.Cut(auth, " ")
		cfg := c.ingest()
		if !strings.EqualFold(scheme, "Bearer") || cfg.APIToken == "" || !tokenEqual(strings.TrimSpace(token), cfg.APIToken) {
			return nil, errBadToken
		}
		return &identity{user: ingest.RequesterAPIToken, bearer: true}, nil
	}
	s := c.settings.Load()
	sess, user, err := c.sessionOf(r)
	if err != nil {
		return nil, err
	}
	if proxied := c.proxyUser(r, s); proxied != "" {
		if sess != "" && user == proxied {
			return c.sessionIdentity(sess, user), nil
		}
		if r.Method != http.MethodGet {
			return nil, nil // a form needs the token of a session made before it
		}
		return c.startSession(w, r, proxied)
	}
	if sess == "" || !s.signInEnabled() {
		return nil, nil
	}
	return c.sessionIdentity(sess, user), nil
}

func (c *Console) sessionIdentity(sess, user string) *identity {
	return &identity{user: user, session: sess, csrf: c.sign("csrf", sess)}
}

// sessionOf returns the live session r's cookie names, and its user; ""
// when the cookie is missing, forged, expired or signed out.
func (c *Console) sessionOf(r *http.Request) (string, string, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", "", nil
	}
	sess, expires, ok := c.verifySession(ck.Value)
	now := c.now()
	if !ok || !now.Before(expires) {
		return "", "", nil
	}
	user, err := c.db.ConsoleSession(r.Context(), sess, now)
	if errors.Is(err, relay.ErrNotFound) {
		return "", "", nil
	}
	return sess, user, err
}

// proxyUser returns the user the trusted reverse proxy names, "" when the
// proxy is not configured, the connection is not from it, or the header
// is empty.
func (c *Console) proxyUser(r *http.Request, s *Settings) string {
	if s.ProxyHeader == "" || !fromTrusted(r, s.ProxyTrusted) {
		return ""
	}
	user := strings.TrimSpace(r.Header.Get(s.ProxyHeader))
	if user == "" || len(user) > maxUserName {
		return ""
	}
	return clean.Line(user)
}

func fromTrusted(r *http.Request, trusted []netip.Prefix) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// secure reports whether the browser reached relay over TLS: directly, or
// through the trusted proxy, which says so in X-Forwarded-Proto.
func (c *Console) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	s := c.settings.Load()
	return s.ProxyHeader != "" && fromTrusted(r, s.ProxyTrusted) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// startSession signs user in: a session row and its cookie.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, user string) (*identity, error) {
	s := c.settings.Load()
	now := c.now()
	expires := now.Add(s.SessionTTL)
	sess := rand.Text()
	if err := c.db.CreateConsoleSession(r.Context(), sess, user, now, expires); err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: c.signSession(sess, expires), Path: Prefix, Expires: expires,
		MaxAge: int(s.SessionTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r),
	})
	c.logger.InfoContext(r.Context(), "console sign-in", slog.String("user", user))
	return c.sessionIdentity(sess, user), nil
}

// signSession makes the cookie value for session sess: "sess.expires.mac".
func (c *Console) signSession(sess string, expires time.Time) string {
	payload := sess + "." + strconv.FormatInt(expires.Unix(), 10)
	return payload + "." + c.sign("session", payload)
}

func (c *Console) verifySession(v string) (string, time.Time, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 || !tokenEqual(v[i+1:], c.sign("session", v[:i])) {
		return "", time.Time{}, false
	}
	sess, exp, ok := strings.Cut(v[:i], ".")
	n, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || sess == "" {
		return "", time.Time{}, false
	}
	return sess, time.Unix(n, 0), true
}

// sign is the HMAC of value under the console's key, for one purpose.
func (c *Console) sign(purpose, value string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(purpose + "\x00" + value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenEqual compares two tokens in constant time; an empty one never
// matches.
func tokenEqual(got, want string) bool {
	if got == "" || want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// signInData is the sign-in page's data.
type signInData struct {
	Enabled  bool
	Password bool
	Proxy    bool
	Next     string
	Error    string
	UserName string
}

// signInPage shows the sign-in form, or says how to enable sign-in.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	c.showSignIn(w, r, http.StatusOK, signInData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) showSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) {
	s := c.settings.Load()
	d.Enabled, d.Password, d.Proxy = s.signInEnabled(), s.Users != nil, s.ProxyHeader != ""
	if d.Proxy && c.proxyUser(r, s) != "" {
		// Signed in by the proxy: straight on.
		http.Redirect(w, r, orDefault(d.Next, Prefix), http.StatusSeeOther)
		return
	}
	nonce := rand.Text()
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Value: nonce, Path: "/ui/signin", MaxAge: 3600,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
	c.render(w, r, status, "signin", page{Title: "Sign in", CSRF: c.sign("signin", nonce), Data: d})
}

// signIn checks a user name and password from the users file.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	d := signInData{Next: safeNext(r.PostFormValue("next")), UserName: r.PostFormValue("username")}
	ck, err := r.Cookie(signInCookie)
	if err != nil || !tokenEqual(r.PostFormValue("csrf"), c.sign("signin", ck.Value)) {
		d.Error = "The sign-in form was out of date; please try again."
		c.showSignIn(w, r, http.StatusForbidden, d)
		return
	}
	s := c.settings.Load()
	user, pass := r.PostFormValue("username"), r.PostFormValue("password")
	if s.Users == nil || len(user) > maxUserName || !s.Users.Check(user, pass) {
		c.logger.WarnContext(r.Context(), "console sign-in refused", slog.String("user", clean.Line(truncate(user, maxUserName))))
		d.Error = "Wrong user name or password."
		c.showSignIn(w, r, http.StatusUnauthorized, d)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Path: "/ui/signin", MaxAge: -1})
	if _, err := c.startSession(w, r, user); err != nil {
		c.failErr(w, r, nil, err)
		return
	}
	http.Redirect(w, r, orDefault(d.Next, Prefix), http.StatusSeeOther)
}

// signOut ends the session everywhere (its row goes) and drops the cookie.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	sess, user, err := c.sessionOf(r)
	if err != nil {
		c.failErr(w, r, nil, err)
		return
	}
	if sess == "" || !tokenEqual(r.PostFormValue("csrf"), c.sign("csrf", sess)) {
		c.fail(w, r, nil, http.StatusForbidden, "You are not signed in, or the form was out of date.")
		return
	}
	if err := c.db.DeleteConsoleSession(r.Context(), sess); err != nil {
		c.failErr(w, r, nil, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: Prefix, MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
	c.logger.InfoContext(r.Context(), "console sign-out", slog.String("user", user))
	c.render(w, r, http.StatusOK, "signedout", page{Title: "Signed out", Data: c.settings.Load().ProxyHeader != ""})
}

// safeNext keeps a return address only when it is a console page, so that
// the sign-in cannot be used to send someone elsewhere.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, "//") {
		return ""
	}
	return next
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
