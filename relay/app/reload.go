package app

import (
	"context"
	"errors"

	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/deliver"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/ui"
	"github.com/skype-relay/relay/relay/web"
)

// reloader swaps in a new configuration: routes, conversations, templates,
// tokens and delivery policies change at once for every request that
// starts afterwards; requests in flight finish with what they started with.
// A configuration that does not load, or whose templates fail on the
// built-in samples, is rejected and the old one keeps serving.
type reloader struct {
	load     func() (*config.Config, error)
	handler  *ingest.Handler
	policies *atomic.Pointer[map[string]deliver.Policy]
	logger   *slog.Logger
	// web, when set, is the listener's web configuration file, read again
	// on every reload.
	web *web.Config
	// console, when set, takes the console's sign-in settings on reload.
	console *ui.Console

	mu      sync.Mutex
	current *config.Config
	// setMemoryLimit, when set, follows ingest.max_inflight_bytes.
	setMemoryLimit func(bytes int64)

	success   prometheus.Gauge
	timestamp prometheus.Gauge
}

func newReloader(cfg *config.Config, load func() (*config.Config, error), handler *ingest.Handler,
	policies *atomic.Pointer[map[string]deliver.Policy], logger *slog.Logger, reg prometheus.Registerer) *reloader {
	r := &reloader{
		load: load, handler: handler, policies: policies, logger: logger, current: cfg,
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_config_last_reload_successful",
			Help: "1 when the last configuration reload succeeded (or none was tried), 0 when it was rejected.",
		}),
		timestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully, in Unix seconds.",
		}),
	}
	r.success.Set(1)
	r.timestamp.SetToCurrentTime()
	if reg != nil {
		reg.MustRegister(r.success, r.timestamp)
	}
	return r
}

// Reload loads the configuration again and applies it, or returns why not.
// config returns the configuration in force.
func (r *reloader) config() *config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

func (r *reloader) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.reload(ctx)
	if err != nil {
		r.success.Set(0)
		r.logger.ErrorContext(ctx, "configuration reload rejected; the previous configuration keeps serving", slog.Any("err", err))
		return err
	}
	r.success.Set(1)
	r.timestamp.SetToCurrentTime()
	return nil
}

func (r *reloader) reload(ctx context.Context) error {
	if r.load == nil {
		return errors.New("reload is not available: relay was started without a configuration file")
	}
	cfg, err := r.load()
	if err != nil {
		return err
	}
	if err := CheckConfig(cfg); err != nil {
		return err
	}
	engine, err := NewEngine(cfg)
	if err != nil {
		return err
	}
	cs, err := ConsoleSettings(cfg)
	if err != nil {
		return err
	}
	if r.web != nil {
		// Last of the checks: it applies the file when it passes.
		if err := r.web.Reload(); err != nil {
			return err
		}
	}
	logWarnings(ctx, r.logger, Warnings(cfg, engine))
	for _, key := range restartOnly(r.current, cfg) {
		r.logger.WarnContext(ctx, "configuration change needs a restart to take effect", slog.String("key", key))
	}
	r.handler.SetConfig(IngestConfig(cfg, engine))
	if r.setMemoryLimit != nil {
		r.setMemoryLimit(MemoryLimit(cfg))
	}
	if r.console != nil {
		r.console.SetSettings(cs)
	}
	p := policiesOf(cfg)
	r.policies.Store(&p)
	r.current = cfg
	r.logger.InfoContext(ctx, "configuration reloaded", slog.Int("routes", len(cfg.Routes)),
		slog.Int("conversations", len(cfg.Conversations)))
	return nil
}

// restartOnly names the changed settings that a reload cannot apply: the
// listener, the database, the UCWA account and the worker's tuning.
func restartOnly(old, cfg *config.Config) []string {
	var keys []string
	check := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	check("listen_address", old.ListenAddress, cfg.ListenAddress)
	check("database", old.Database.MaxConns, cfg.Database.MaxConns)
	check("DATABASE_URL", old.DatabaseURL(), cfg.DatabaseURL())
	oldU, newU := old.UCWA, cfg.UCWA
	oldU.Password, newU.Password = config.Secret{}, config.Secret{}
	oldU.RootCAs, newU.RootCAs = nil, nil
	check("ucwa", oldU, newU)
	check("ucwa password", old.UCWA.Password.Reveal() == cfg.UCWA.Password.Reveal(), true)
	check("delivery", old.Delivery, cfg.Delivery)
	oi, ni := old.Ingest, cfg.Ingest
	oi.MaxBodyBytes, ni.MaxBodyBytes = 0, 0
	oi.MaxInflightBytes, ni.MaxInflightBytes = 0, 0
	oi.DedupWindow, ni.DedupWindow = 0, 0
	oi.MaxMessageBytes, ni.MaxMessageBytes = 0, 0
	oi.MaxParts, ni.MaxParts = 0, 0
	oi.MaxMessagesPerNotification, ni.MaxMessagesPerNotification = 0, 0
	check("ingest (timeouts, batch_max, batch_max_bytes)", oi, ni)
	check("log", old.Log, cfg.Log)
	check("console cookie key", old.Console.CookieKey.Reveal() == cfg.Console.CookieKey.Reveal(), true)
	return keys
}

func policiesOf(cfg *config.Config) map[string]deliver.Policy {
	out := make(map[string]deliver.Policy, len(cfg.Routes))
	for _, r := range cfg.Routes {
		out[r.Name] = deliver.Policy{
			MaxAttempts:     r.Delivery.MaxAttempts,
			MaxAge:          r.Delivery.MaxAge,
			ResendUncertain: r.Delivery.Uncertain != config.UncertainSkip,
			MaxResends:      r.Delivery.MaxResends,
			Supersede:       r.Delivery.Supersede,
			Coalesce:        r.Delivery.Coalesce,
			CoalesceAfter:   r.Delivery.CoalesceAfter,
			MaxMessageBytes: cfg.Ingest.MaxMessageBytes,
		}
	}
	return out
}

// watchReloads reloads on every request from the outside (SIGHUP) until ctx ends.
func (r *reloader) watchReloads(ctx context.Context, requests <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-requests:
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			_ = r.Reload(rctx) // logged and counted inside
			cancel()
		}
	}
}
