// Package ui is relay's web console, served under /ui/ on relay's own
// listener: an overview of the delivery state, the deliveries with
// filters, one delivery with its whole history and a Redeliver button, and
// a template preview. Pages are html/template, styles and the one small
// script are embedded files; nothing is inline, so a strict
// Content-Security-Policy holds.
//
// Everything shown comes from webhook senders and is escaped by
// html/template; characters that could hide or reorder text (controls,
// bidi overrides, invisible characters) are shown as visible escapes, and
// no sender's value ever becomes a link. Every POST carries a CSRF token
// bound to the session and is refused from another origin.
//
// People sign in with a password (a users file of bcrypt hashes, the
// basic_auth_users of a Prometheus web configuration file) or through an
// authenticating reverse proxy's user header; scripts may present the API
// token as a bearer token. See auth.go.
package ui

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/store"
	"github.com/skype-relay/relay/relay/web"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is served.
const Prefix = "/ui/"

// Settings are the console's reloadable settings.
type Settings struct {
	// Users sign in with a password; nil turns password sign-in off.
	Users *web.Users
	// ProxyHeader names the header an authenticating reverse proxy puts
	// the user name in; "" turns proxy sign-in off. It is believed only on
	// connections from ProxyTrusted.
	ProxyHeader  string
	ProxyTrusted []netip.Prefix
	// SessionTTL is how long a sign-in lasts (default 12h).
	SessionTTL time.Duration
	// TemplateFiles maps a route template's name to its file, so that a
	// preview's template error can show the line it names.
	TemplateFiles map[string]string
}

// signInEnabled reports whether anyone can sign in with s.
func (s *Settings) signInEnabled() bool { return s.Users != nil || s.ProxyHeader != "" }

// Options configure a Console.
type Options struct {
	DB     *store.DB
	Logger *slog.Logger
	// IngestConfig returns the configuration the webhooks are served with
	// now: routes, templates, the API token, the redeliver window.
	IngestConfig func() *ingest.Config
	// CookieKey signs session cookies and CSRF tokens; nil makes a random
	// one (sessions then end when the process does).
	CookieKey []byte
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console serves the web console.
type Console struct {
	db       *store.DB
	logger   *slog.Logger
	ingest   func() *ingest.Config
	key      []byte
	now      func() time.Time
	settings atomic.Pointer[Settings]
	pages    map[string]*template.Template
	mux      *http.ServeMux
	origin   *http.CrossOriginProtection
}

// New builds a Console with settings s.
func New(opts Options, s *Settings) (*Console, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.CookieKey) == 0 {
		opts.CookieKey = make([]byte, 32)
		_, _ = rand.Read(opts.CookieKey)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{db: opts.DB, logger: opts.Logger, ingest: opts.IngestConfig, key: opts.CookieKey, now: opts.Now,
		pages: pages, origin: http.NewCrossOriginProtection()}
	c.origin.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, http.StatusForbidden, "This request came from another site, so it was refused.")
	}))
	c.SetSettings(s)
	c.routes()
	return c, nil
}

// SetSettings applies s to every request from now on (reload).
func (c *Console) SetSettings(s *Settings) {
	if s.SessionTTL <= 0 {
		s.SessionTTL = 12 * time.Hour
	}
	c.settings.Store(s)
}

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", staticFiles(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/signin", c.signInPage)
	m.HandleFunc("POST /ui/signin", c.signIn)
	m.HandleFunc("POST /ui/signout", c.signOut)
	m.Handle("GET /ui/{$}", c.authed(c.overview))
	m.Handle("GET /ui/deliveries", c.authed(c.deliveries))
	m.Handle("POST /ui/deliveries/redeliver", c.authed(c.bulkRedeliver))
	m.Handle("GET /ui/deliveries/{id}", c.authed(c.delivery))
	m.Handle("GET /ui/deliveries/{id}/redeliver", c.authed(c.confirmRedeliver))
	m.Handle("POST /ui/deliveries/{id}/redeliver", c.authed(c.redeliver))
	m.Handle("GET /ui/preview", c.authed(c.preview))
	m.Handle("POST /ui/preview", c.authed(c.preview))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, http.StatusNotFound, "There is no such page.")
	})
	c.mux = m
}

// contentSecurityPolicy allows the console's own files and nothing else:
// no inline script or style, no frames, forms only to itself.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves the console. POSTs from another origin are refused
// before anything else happens.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if err := c.origin.Check(r); err != nil {
		c.fail(w, r, nil, http.StatusForbidden, "This request came from another site, so it was refused.")
		return
	}
	c.mux.ServeHTTP(w, r)
}

// staticFiles lets browsers keep the embedded files for a day.
func staticFiles(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		next.ServeHTTP(w, r)
	})
}

// page is what every page template gets.
type page struct {
	Title string
	// Nav marks the current section: overview, deliveries, preview.
	Nav  string
	User string
	// CSRF is the token every form of the page carries.
	CSRF string
	// Bearer: the request came with the API token, not a browser session.
	Bearer bool
	Data   any
}

// render writes the page template name with data, or an error page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		c.logger.ErrorContext(r.Context(), "console page template missing", slog.String("page", name))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.logger.ErrorContext(r.Context(), "render console page", slog.String("page", name), slog.Any("err", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage is the data of the error page.
type errorPage struct {
	Status  int
	Message string
}

// fail answers with an error page saying msg. An error from the store
// picks the status and message of its kind; its detail is logged when the
// fault is relay's or the database's.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, id *identity, status int, msg string) {
	p := page{Title: http.StatusText(status), Data: errorPage{Status: status, Message: msg}}
	if id != nil {
		p.User, p.CSRF, p.Bearer = id.user, id.csrf, id.bearer
	}
	c.render(w, r, status, "error", p)
}

// failErr answers err: not found, conflict and bad input say what the
// store said; anything else is logged and answered in general terms.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, id *identity, err error) {
	switch {
	case errors.Is(err, relay.ErrNotFound):
		c.fail(w, r, id, http.StatusNotFound, err.Error())
	case errors.Is(err, relay.ErrInvalid):
		c.fail(w, r, id, http.StatusBadRequest, err.Error())
	case errors.Is(err, relay.ErrConflict):
		c.fail(w, r, id, http.StatusConflict, err.Error())
	case errors.Is(err, relay.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
		c.logger.WarnContext(r.Context(), "console request failed: database unavailable", slog.String("path", r.URL.Path), slog.Any("err", err))
		c.fail(w, r, id, http.StatusServiceUnavailable, "The database cannot answer right now; try again in a moment.")
	default:
		c.logger.ErrorContext(r.Context(), "console request failed", slog.String("path", r.URL.Path), slog.Any("err", err))
		c.fail(w, r, id, http.StatusInternalServerError, "relay failed to show this page; its log has the details.")
	}
}
