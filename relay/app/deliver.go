package app

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/deliver"
	"github.com/skype-relay/relay/relay/deliver/ucwa"
	"github.com/skype-relay/relay/relay/store"
)

// version is the relay's version as it goes into the UCWA userAgent.
var version = "dev"

// SetVersion records the binary's version (main calls it).
func SetVersion(v string) { version = v }

// newSupervisor wires the delivery side: the worker on the queue, and the
// supervisor that runs it with a UCWA session while this replica holds the
// bot account's lease.
func newSupervisor(cfg *config.Config, db *store.DB, logger *slog.Logger, reg prometheus.Registerer, opts Options,
	policies *atomic.Pointer[map[string]deliver.Policy]) *deliver.Supervisor {
	metrics := deliver.NewMetrics(reg)
	d := cfg.Delivery
	worker := deliver.NewWorker(db, deliver.Options{
		MaxInFlight:  d.MaxInFlight,
		Lease:        d.Lease,
		PollInterval: d.PollInterval,
		DrainTimeout: d.DrainTimeout,
		Retry:        deliver.RetryPolicy{Base: d.RetryBase, Max: d.RetryMax},
		PolicyFunc: func(route string) deliver.Policy {
			if p, ok := (*policies.Load())[route]; ok {
				return p
			}
			// A route removed from the config still has deliveries queued:
			// they go out one by one (the message size in force is not
			// known here).
			p := deliver.DefaultPolicy()
			p.Coalesce = false
			return p
		},
		Lookahead: func() int {
			n := 0
			for _, p := range *policies.Load() {
				if p.Coalesce {
					n = max(n, p.CoalesceAfter)
				}
			}
			return n
		},
		Logger:  logger,
		Metrics: metrics,
		Now:     opts.Now,
	})
	ucfg := UCWAConfig(cfg)
	sup := deliver.NewSupervisor(db, worker, deliver.SupervisorOptions{
		Account:     cfg.UCWA.Username,
		States:      append(slices.Clone(ucwa.Phases), deliver.StateStandby, deliver.StateStopped),
		TTL:         d.SessionTTL,
		DatabaseURL: cfg.DatabaseURL(),
		Logger:      logger,
		Metrics:     metrics,
		Open: func() (deliver.Session, error) {
			c, err := ucwa.New(ucfg, logger.With(slog.String("component", "ucwa")))
			if err != nil {
				return nil, err
			}
			return session{c}, nil
		},
	})
	if reg != nil {
		reg.MustRegister(sup)
	}
	return sup
}

// UCWAConfig turns the configuration's ucwa section into the client's.
func UCWAConfig(cfg *config.Config) ucwa.Config {
	u := cfg.UCWA
	caFile := u.CAFile
	if caFile != "" && !filepath.IsAbs(caFile) {
		caFile = filepath.Join(cfg.Dir, caFile)
	}
	t := ucwa.DefaultTimers()
	t.Request = u.Timers.RequestTimeout
	t.EventTimeout = u.Timers.EventTimeout
	t.InvitationWait = u.Timers.InvitationTimeout
	t.MessageWait = u.Timers.MessageTimeout
	t.RetryMin, t.RetryMax = u.Timers.RetryMin, u.Timers.RetryMax
	t.FailoverMin, t.FailoverMax = u.Timers.FailoverMin, u.Timers.FailoverMax
	return ucwa.Config{
		Username:           u.Username,
		Password:           u.Password.Reveal(),
		DiscoveryURLs:      u.DiscoveryURLs,
		AllowedHosts:       u.AllowedHosts,
		CAFile:             caFile,
		InsecureSkipVerify: u.InsecureSkipVerify,
		Version:            version,
		Timers:             t,
	}
}

// session adapts the UCWA client to deliver.Session. The client itself
// marks the outcomes caused by the session or the server (Outcome.Session).
type session struct{ c *ucwa.Client }

func (s session) Send(ctx context.Context, t relay.Target, opID, text string) (relay.Outcome, error) {
	return s.c.Send(ctx, t, opID, text)
}

func (s session) Close(ctx context.Context) error { return s.c.Close(ctx) }
func (s session) Stopped() <-chan struct{}        { return s.c.Stopped() }
func (s session) Err() error                      { return s.c.Err() }
func (s session) State() string                   { return s.c.Status().Phase }
