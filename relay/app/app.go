// Package app wires the relay together and runs it: it opens the database,
// applies migrations, builds the template engine and the HTTP API, serves,
// and shuts everything down in order. Tests run the whole relay in-process
// through Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/backoff"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/deliver"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/match"
	"github.com/skype-relay/relay/relay/render"
	"github.com/skype-relay/relay/relay/store"
	"github.com/skype-relay/relay/relay/ui"
	"github.com/skype-relay/relay/relay/web"
)

// Options adjust Run for tests and the command line.
type Options struct {
	// SkipMigrate leaves the schema alone (for deployments that migrate in a
	// separate job before rollout).
	SkipMigrate bool
	// Listener, when set, is served instead of listening on the configured
	// address (tests pass a 127.0.0.1:0 listener).
	Listener net.Listener
	// Registry receives the relay's metrics; nil means a fresh registry.
	Registry *prometheus.Registry
	// ShutdownTimeout bounds the graceful shutdown (default 25s).
	ShutdownTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Reload loads the configuration again (from the file the relay was
	// started with) for SIGHUP and POST /-/reload; nil turns reload off.
	Reload func() (*config.Config, error)
	// ReloadRequests asks for a reload (main sends on SIGHUP).
	ReloadRequests <-chan struct{}
	// WebConfigFile is a Prometheus web configuration file for the
	// listener (TLS, basic auth); empty serves plain HTTP to anyone.
	WebConfigFile string
	// SetMemoryLimit, when set, is given the Go runtime memory limit the
	// configuration calls for (MemoryLimit) at start and after every
	// reload; main passes debug.SetMemoryLimit unless GOMEMLIMIT is set.
	SetMemoryLimit func(bytes int64)
	// EnableLifecycle serves POST /-/reload; without it the endpoint
	// answers 403 (SIGHUP and ReloadRequests reload either way).
	EnableLifecycle bool
}

// Run serves the relay until ctx is cancelled, then shuts down gracefully:
// it stops accepting connections, lets requests in flight finish (bounded by
// ShutdownTimeout), and closes the database pool last.
func Run(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts Options) error {
	if err := cfg.RequireDatabase(); err != nil {
		return err
	}
	if len(cfg.UnreadSecrets) > 0 {
		return fmt.Errorf("the configuration was loaded without reading its secrets (%s): load it with them to serve",
			strings.Join(cfg.UnreadSecrets, ", "))
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 25 * time.Second
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	engine, err := NewEngine(cfg)
	if err != nil {
		return err
	}
	var webCfg *web.Config
	var listenerAuth func(*http.Request) bool
	if opts.WebConfigFile != "" {
		if webCfg, err = web.Load(opts.WebConfigFile); err != nil {
			return err
		}
		listenerAuth = webCfg.Authenticate
	}
	logWarnings(ctx, logger, Warnings(cfg, engine))

	batchSize := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relay_ingest_commit_requests",
		Help:    "Webhook requests written per group commit.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	commitTime := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relay_ingest_commit_duration_seconds",
		Help:    "Time to write one group commit of webhook requests, round trip and commit included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	reg.MustRegister(batchSize, commitTime)
	db, err := store.Open(ctx, cfg.DatabaseURL(), store.Options{
		MaxConns:      int32(cfg.Database.MaxConns),
		BatchMax:      cfg.Ingest.BatchMax,
		BatchMaxBytes: cfg.Ingest.BatchMaxBytes,
		OpTimeout:     min(cfg.Ingest.RequestTimeout, config.CommitAllowance),
		OnIngestCommit: func(requests int, took time.Duration) {
			batchSize.Observe(float64(requests))
			commitTime.Observe(took.Seconds())
		},
		Logger: logger,
		Now:    opts.Now,
	})
	if err != nil {
		return err
	}
	// Closed last: after the HTTP server has drained.
	defer db.Close()

	policies := &atomic.Pointer[map[string]deliver.Policy]{}
	initial := policiesOf(cfg)
	policies.Store(&initial)
	var rl *reloader
	var handler *ingest.Handler
	consoleSettings, err := ConsoleSettings(cfg)
	if err != nil {
		return err
	}
	console, err := ui.New(ui.Options{
		DB: db, Logger: logger.With(slog.String("component", "console")), Now: opts.Now,
		IngestConfig: func() *ingest.Config { return handler.Config() },
		CookieKey:    []byte(cfg.Console.CookieKey.Reveal()),
	}, consoleSettings)
	if err != nil {
		return err
	}
	handler = ingest.New(IngestConfig(cfg, engine), ingest.Options{
		DB: db, Logger: logger, Registerer: reg, Gatherer: reg, RequestTimeout: cfg.Ingest.RequestTimeout,
		Reload:          func(ctx context.Context) error { return rl.Reload(ctx) },
		EnableLifecycle: opts.EnableLifecycle,
		ListenerAuth:    listenerAuth,
		Console:         console,
	})
	rl = newReloader(cfg, opts.Reload, handler, policies, logger, reg)
	rl.web = webCfg
	rl.setMemoryLimit = opts.SetMemoryLimit
	if opts.SetMemoryLimit != nil {
		opts.SetMemoryLimit(MemoryLimit(cfg))
		logger.InfoContext(ctx, "memory limit set", slog.Int64("bytes", MemoryLimit(cfg)))
	}
	rl.console = console
	if !cfg.Console.CookieKey.IsSet() {
		logger.InfoContext(ctx, "console: no cookie key configured (console.cookie_key_file), so one was made for this run: "+
			"sign-ins end when relay restarts and are not shared between replicas")
	}
	srv := &http.Server{
		Handler:           handler.Echo(),
		ReadHeaderTimeout: min(cfg.Ingest.ReadTimeout, 10*time.Second),
		ReadTimeout:       cfg.Ingest.ReadTimeout,
		WriteTimeout:      cfg.Ingest.WriteTimeout,
		IdleTimeout:       cfg.Ingest.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln := opts.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.ListenAddress)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.ListenAddress, err)
		}
	}
	logger.InfoContext(ctx, "relay listening", slog.String("address", ln.Addr().String()), slog.Any("config", cfg))
	if webCfg != nil {
		logger.InfoContext(ctx, "web configuration file applied to the listener",
			slog.String("file", opts.WebConfigFile), slog.Any("web", webCfg.Summary()))
	}

	// Every goroutine below is owned here: started, stopped through ctx or
	// Shutdown, and waited for before Run returns.
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() {
		serve := srv.Serve
		if webCfg != nil {
			serve = func(ln net.Listener) error { return webCfg.Serve(srv, ln) }
		}
		if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	schemaReady := make(chan struct{})
	wg.Go(func() {
		if prepareSchema(bgCtx, cfg.DatabaseURL(), db, opts.SkipMigrate, logger) {
			handler.Open()
			logger.InfoContext(bgCtx, "database schema ready, accepting webhooks")
		}
		close(schemaReady)
	})
	wg.Go(func() { sweepDedupKeys(bgCtx, db, cfg.Ingest.DedupWindow, logger) })
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	stats := &queueStats{db: db, logger: logger, now: now}
	reg.MustRegister(stats)
	wg.Go(func() { stats.run(bgCtx, schemaReady) })
	sw := newSweeper(db, logger, now, func() time.Duration { return rl.config().Retention }, reg)
	wg.Go(func() { sw.run(bgCtx, schemaReady) })
	if opts.ReloadRequests != nil {
		wg.Go(func() { rl.watchReloads(bgCtx, opts.ReloadRequests) })
	}
	// Delivery has its own shutdown order: it stops claiming when ctx ends,
	// drains the sends in flight, closes the UCWA session and releases the
	// lease; the database closes only after (deferred above).
	var deliverWG sync.WaitGroup
	holder := "" // this replica's name in the session lease, when it can hold one
	if cfg.UCWA.Enabled() {
		sup := newSupervisor(cfg, db, logger, reg, opts, policies)
		holder = sup.Holder()
		logger.InfoContext(ctx, "delivery enabled", slog.String("account", cfg.UCWA.Username),
			slog.String("holder", sup.Holder()))
		deliverWG.Go(func() {
			<-schemaReady
			sup.Run(ctx)
		})
	} else {
		logger.WarnContext(ctx, "delivery is off: ucwa.discovery_urls is not set; webhooks are stored but not sent")
	}

	wg.Go(func() { watchSessions(bgCtx, db, holder, logger) })

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-serveErr:
		logger.Error("HTTP server stopped", slog.Any("err", runErr))
	}
	stopBackground()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("graceful shutdown cut short", slog.Any("err", err))
		_ = srv.Close()
	}
	wg.Wait()
	deliverWG.Wait()
	logger.Info("relay stopped")
	return runErr
}

// prepareSchema applies pending migrations (unless skip) and then waits for
// the schema to be current, retrying with backoff while the database is
// unreachable. It reports whether the schema is ready (false: ctx ended).
func prepareSchema(ctx context.Context, url string, db *store.DB, skip bool, logger *slog.Logger) bool {
	retry := backoff.Counter{Policy: backoff.Policy{Min: 250 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}}
	for {
		err := func() error {
			if !skip {
				if err := Migrate(url, func(m *store.Migrator) error { return m.Up() }); err != nil {
					return err
				}
			}
			return db.CheckSchema(ctx)
		}()
		if err == nil {
			return true
		}
		wait := retry.Next()
		logger.WarnContext(ctx, "database not ready", slog.Any("err", err), slog.Duration("retry_in", wait))
		if !backoff.Sleep(ctx, wait) {
			return false
		}
	}
}

// watchSessions keeps the store announcing new deliveries exactly while
// another replica holds the UCWA session: that replica's worker then wakes
// within milliseconds. Here, the worker is woken in process, and with no
// holder anywhere there is nobody to tell.
func watchSessions(ctx context.Context, db *store.DB, holder string, logger *slog.Logger) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		held, err := db.LeaseHeldElsewhere(ctx, holder)
		switch {
		case err == nil:
			db.SetNotifyOthers(held)
		case ctx.Err() == nil:
			logger.DebugContext(ctx, "read session leases", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Migrate runs fn with a migrator for the database at url.
func Migrate(url string, fn func(*store.Migrator) error) error {
	m, err := store.NewMigrator(url)
	if err != nil {
		return err
	}
	defer m.Close()
	return fn(m)
}

// sweepDedupKeys removes deduplication keys whose window ended, every
// minute, so the key table stays the size of one window of traffic.
func sweepDedupKeys(ctx context.Context, db *store.DB, window time.Duration, logger *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for {
				n, err := db.SweepDedupKeys(ctx, now.Add(-window), 5000)
				if err != nil {
					logger.WarnContext(ctx, "sweep dedup keys", slog.Any("err", err))
					break
				}
				if n < 5000 {
					break
				}
			}
		}
	}
}

// NewEngine builds the template engine for cfg: the shipped templates plus
// every route's template file.
func NewEngine(cfg *config.Config) (*render.Engine, error) {
	files := map[string]string{}
	for _, r := range cfg.Routes {
		if r.TemplateFile != "" {
			files[r.Template] = r.TemplateFile
		}
	}
	engine, err := render.New(render.Options{Files: files, MaxBytes: cfg.Ingest.MaxMessageBytes, MaxParts: cfg.Ingest.MaxParts})
	if err != nil {
		return nil, fmt.Errorf("load templates: %w", err)
	}
	for _, r := range cfg.Routes {
		if !engine.Has(r.Template) {
			return nil, fmt.Errorf("routes %q: template %q is neither shipped (%v) nor a file", r.Name, r.Template, engine.Names())
		}
	}
	return engine, nil
}

// ConsoleSettings turns the configuration's console section into the
// console's settings, reading the users file.
func ConsoleSettings(cfg *config.Config) (*ui.Settings, error) {
	s := &ui.Settings{ProxyHeader: cfg.Console.Proxy.UserHeader, ProxyTrusted: cfg.Console.Proxy.Trusted,
		SessionTTL: cfg.Console.SessionTTL, TemplateFiles: map[string]string{}}
	if path := cfg.UsersFilePath(); path != "" {
		users, err := web.LoadUsers(path)
		if err != nil {
			return nil, fmt.Errorf("console.users_file: %w", err)
		}
		s.Users = users
	}
	for _, r := range cfg.Routes {
		if r.TemplateFile != "" {
			s.TemplateFiles[r.Template] = r.TemplateFile
		}
	}
	return s, nil
}

// IngestConfig turns the configuration into what the HTTP handlers read.
func IngestConfig(cfg *config.Config, engine *render.Engine) *ingest.Config {
	routes := make(map[string]*ingest.Route, len(cfg.Routes))
	for _, r := range cfg.Routes {
		ir := &ingest.Route{Name: r.Name, Format: r.Format, Token: r.BearerToken.Reveal(), Secret: r.Secret.Reveal(),
			Template: r.Template, Defaults: r.Conversations, Conversations: map[string][]relay.Target{},
			SplitStatus: r.SplitStatus, PerAlert: r.PerAlert, SharedText: !engine.UsesConversation(r.Template)}
		for _, name := range r.Conversations {
			ir.Conversations[name] = cfg.Targets(name)
		}
		for _, rule := range r.Rules {
			ir.Rules = append(ir.Rules, match.Rule{Matchers: rule.Matchers, Conversations: rule.Conversations, Continue: rule.Continue})
			for _, name := range rule.Conversations {
				ir.Conversations[name] = cfg.Targets(name)
			}
		}
		routes[r.Name] = ir
	}
	convs := make(map[string][]relay.Target, len(cfg.Conversations))
	for name := range cfg.Conversations {
		convs[name] = cfg.Targets(name)
	}
	return &ingest.Config{
		Routes:           routes,
		APIToken:         cfg.API.BearerToken.Reveal(),
		MaxBodyBytes:     cfg.Ingest.MaxBodyBytes,
		MaxInflightBytes: cfg.Ingest.MaxInflightBytes,
		MaxMessages:      cfg.Ingest.MaxMessagesPerNotification,
		DedupWindow:      cfg.Ingest.DedupWindow,
		Engine:           engine,
		Conversations:    convs,
		RedeliverWindow:  cfg.API.RedeliverWindow,
	}
}
