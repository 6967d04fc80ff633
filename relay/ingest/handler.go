// Package ingest is relay's HTTP API: the webhook endpoint that turns a
// notification into committed deliveries, the audit API that shows them,
// and the operational endpoints. echo stays inside this package; the
// handlers are methods on Handler.
package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/match"
	"github.com/skype-relay/relay/relay/render"
	"github.com/skype-relay/relay/relay/store"
)

// Route is one webhook endpoint, /v1/webhooks/{Name}.
type Route struct {
	Name string
	// Format is alertmanager, github, gitlab or generic.
	Format string
	// Token, when set, must be presented as "Authorization: Bearer <token>".
	Token string
	// Secret checks github signatures and gitlab tokens.
	Secret   string
	Template string
	// Rules pick conversations per alert (per event); what no rule picks
	// goes to Defaults.
	Rules    []match.Rule
	Defaults []string
	// Conversations maps every conversation the route can reach to its
	// recipients (one delivery each).
	Conversations map[string][]relay.Target
	// SplitStatus and PerAlert split an Alertmanager group into messages.
	SplitStatus bool
	PerAlert    bool
	// SharedText means the template renders the same text for every
	// conversation given the same alerts, so it is rendered once.
	SharedText bool
}

// Config is what the handlers read on every request. It is swapped as a
// whole (SetConfig), so a request sees one consistent version.
type Config struct {
	Routes map[string]*Route
	// APIToken protects the audit API; empty turns the audit API off.
	APIToken     string
	MaxBodyBytes int64
	// MaxInflightBytes caps the request bodies held at once (see inflight).
	MaxInflightBytes int64
	// MaxMessages caps the messages per_alert or split_status make of one
	// notification for one conversation (see capMessages); below 2 means
	// DefaultMaxMessages.
	MaxMessages int
	DedupWindow time.Duration
	Engine      *render.Engine
	// Conversations maps every configured conversation to its recipients,
	// for test messages (POST /v1/test-messages).
	Conversations map[string][]relay.Target
	// RedeliverWindow: a redelivery without an Idempotency-Key less than
	// this long after the delivery's previous one is refused.
	RedeliverWindow time.Duration
}

// Handler serves relay's HTTP API.
type Handler struct {
	db       *store.DB
	logger   *slog.Logger
	metrics  *metrics
	inflight *inflight
	// prepareSlots holds a token per request decoding and rendering.
	prepareSlots chan struct{}
	gatherer     prometheus.Gatherer
	cfg          atomic.Pointer[Config]
	// opened is false until the database schema is known to be in place;
	// until then the webhook and audit endpoints answer 503.
	opened atomic.Bool
	// requestTimeout bounds each webhook request end to end.
	requestTimeout time.Duration
	reload         func(ctx context.Context) error
	lifecycle      bool
	listenerAuth   func(*http.Request) bool
	console        http.Handler
	// mismatchLog keeps fingerprint mismatches from flooding the log.
	mismatchLog *logLimiter
}

// Options configures a Handler.
type Options struct {
	DB             *store.DB
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	Gatherer       prometheus.Gatherer
	RequestTimeout time.Duration
	// Reload does what POST /-/reload asks for.
	Reload func(ctx context.Context) error
	// EnableLifecycle serves POST /-/reload (relay serve
	// --web.enable-lifecycle, Prometheus' flag); without it the endpoint
	// answers 403 saying how to turn it on.
	EnableLifecycle bool
	// ListenerAuth, when set, checks the credentials the listener asks of
	// every client (basic auth from the web configuration file). Endpoints
	// with a credential of their own ask only for that one: a webhook route
	// with a bearer token or a signing secret, and, when the API token is
	// set, the audit API and /-/reload. A sender can present only one
	// Authorization header, so asking both would lock it out.
	ListenerAuth func(*http.Request) bool
	// Console, when set, is the web console, served under /ui/. It signs
	// people in by itself, so the listener's basic auth does not apply.
	Console http.Handler
}

// New builds a Handler serving cfg.
func New(cfg *Config, opts Options) *Handler {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	h := &Handler{
		db:             opts.DB,
		logger:         opts.Logger,
		gatherer:       opts.Gatherer,
		requestTimeout: opts.RequestTimeout,
		reload:         opts.Reload,
		lifecycle:      opts.EnableLifecycle,
		listenerAuth:   opts.ListenerAuth,
		inflight:       newInflight(),
		prepareSlots:   make(chan struct{}, prepareSlots()),
		console:        opts.Console,
		mismatchLog:    newLogLimiter(mismatchLogEvery),
	}
	h.metrics = newMetrics(opts.Registerer)
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.inflight.collectors()...)
	}
	h.SetConfig(cfg)
	return h
}

// SetConfig makes cfg the configuration for every request that starts from
// now on; requests in flight finish with the one they started with.
func (h *Handler) SetConfig(cfg *Config) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxInflightBytes < cfg.MaxBodyBytes {
		cfg.MaxInflightBytes = max(64<<20, cfg.MaxBodyBytes)
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = 15 * time.Minute
	}
	h.metrics.initRoutes(cfg.Routes)
	h.cfg.Store(cfg)
}

// Config returns the configuration requests are served with now.
func (h *Handler) Config() *Config { return h.cfg.Load() }

// Open lets webhook and audit requests through. The relay calls it once
// migrations are applied.
func (h *Handler) Open() { h.opened.Store(true) }

func (h *Handler) requireOpen(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !h.opened.Load() {
			return fmt.Errorf("relay is starting, database schema not ready yet: %w", relay.ErrUnavailable)
		}
		return next(c)
	}
}

// webhookPath is where the webhook endpoints are, /v1/webhooks/{route}.
const webhookPath = "/v1/webhooks/"

// consolePath is where the web console is.
const consolePath = "/ui/"

// Echo returns the echo instance with every route registered.
func (h *Handler) Echo() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = h.handleError
	e.Use(withRequestID, recoverPanic, h.requireListenerAuth)
	e.POST(webhookPath+":route", h.webhook, h.answerFirst, h.requireOpen)
	e.GET("/v1/deliveries", h.listDeliveries, h.requireAPIToken, h.requireOpen)
	e.GET("/v1/deliveries/:id", h.getDelivery, h.requireAPIToken, h.requireOpen)
	e.POST("/v1/deliveries/:id/redeliver", h.redeliver, h.requireAPIToken, h.requireOpen)
	e.POST("/v1/test-messages", h.testMessage, h.requireAPIToken, h.requireOpen)
	e.POST("/-/reload", h.reloadConfig)
	e.GET("/-/healthy", h.healthy)
	e.GET("/-/ready", h.ready)
	e.HEAD("/-/healthy", h.healthy)
	e.HEAD("/-/ready", h.ready)
	gatherer := h.gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})))
	if h.console != nil {
		e.GET("/ui", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/ui/") })
		e.Any(consolePath+"*", echo.WrapHandler(h.console), h.requireOpen)
	}
	return e
}

// bearerMatches compares the request's bearer token with want in constant
// time. Hashing first makes the compare independent of the lengths too.
// The scheme is matched without regard to case, as RFC 9110 (11.1, once
// RFC 7235) says: "bearer" and "BEARER" are "Bearer".
func bearerMatches(r *http.Request, want string) bool {
	scheme, got, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	g := sha256.Sum256([]byte(strings.TrimSpace(got)))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// requireListenerAuth asks for the listener's credentials on every endpoint
// except those that check their own (webhooks, the audit API, reload):
// these decide with the configuration they read, so a reload cannot slip a
// request between two checks.
func (h *Handler) requireListenerAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Path() {
		case webhookPath + ":route", "/v1/deliveries", "/v1/deliveries/:id", "/v1/deliveries/:id/redeliver", "/-/reload",
			"/ui", consolePath + "*":
			return next(c)
		}
		if err := h.checkListenerAuth(c); err != nil {
			return err
		}
		return next(c)
	}
}

// checkListenerAuth returns errListenerAuth, and asks the client for basic
// auth, unless the request carries the listener's credentials.
func (h *Handler) checkListenerAuth(c echo.Context) error {
	if h.listenerAuth == nil || h.listenerAuth(c.Request()) {
		return nil
	}
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="relay", charset="UTF-8"`)
	return errListenerAuth
}

func (h *Handler) requireAPIToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		cfg := h.cfg.Load()
		if cfg.APIToken == "" {
			if err := h.checkListenerAuth(c); err != nil {
				return err
			}
			return errAuditOff
		}
		if !bearerMatches(c.Request(), cfg.APIToken) {
			return errUnauthorized
		}
		return next(c)
	}
}

func (h *Handler) healthy(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// ready answers 200 when PostgreSQL answers and the schema is the one this
// binary expects, 503 otherwise, saying which.
func (h *Handler) ready(c echo.Context) error {
	if !h.opened.Load() {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": "starting: database schema not ready yet"})
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	if err := h.db.Ping(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": "database unreachable"})
	}
	if err := h.db.CheckSchema(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// reloadConfig serves POST /-/reload: the configuration is loaded again and
// applied, or rejected with the reason (and the old one keeps serving).
//
// The endpoint is opt-in, as in Prometheus and Alertmanager: without
// EnableLifecycle it answers 403. The credentials are checked first, the
// same either way, so that only a client that could reload learns whether
// it may: the API token when one is configured, else the listener's basic
// auth (when the web configuration asks for it) and a loopback address.
func (h *Handler) reloadConfig(c echo.Context) error {
	cfg := h.cfg.Load()
	if cfg.APIToken != "" {
		if !bearerMatches(c.Request(), cfg.APIToken) {
			return errUnauthorized
		}
	} else if err := h.checkListenerAuth(c); err != nil {
		return err
	}
	if !h.lifecycle {
		return errLifecycleOff
	}
	if cfg.APIToken == "" && !isLoopback(c.Request().RemoteAddr) {
		return newAPIError(http.StatusForbidden, "reload from another host needs the API token (api.bearer_token_file)")
	}
	if h.reload == nil {
		return newAPIError(http.StatusNotImplemented, "reload is not available")
	}
	if err := h.reload(c.Request().Context()); err != nil {
		return newAPIError(http.StatusBadRequest, "configuration rejected, the previous one keeps serving: %v", err)
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "reloaded"})
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
