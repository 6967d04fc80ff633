package deliver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay/backoff"
	"github.com/skype-relay/relay/relay/store"
)

// Session is a bot account's sending session: a Poster that must be closed.
type Session interface {
	Poster
	Close(ctx context.Context) error
	// Stopped is closed when the session has given up for good: the
	// server refuses this bot account (its user agent, its credentials).
	// The supervisor then stops sending and releases the lease, so that
	// another replica, perhaps configured differently, may try.
	Stopped() <-chan struct{}
	// Err says why the session stopped (nil while it has not).
	Err() error
	// State is a short word for the relay_ucwa_session_state gauge.
	State() string
}

// Session states the supervisor reports itself, beside the session's own.
const (
	// StateStandby: another replica holds the session lease (or none
	// could be had yet); this one waits to take over.
	StateStandby = "standby"
	// StateStopped: the session gave up for good; the lease is released
	// and the supervisor tries again after StoppedRetry.
	StateStopped = "stopped"
)

// SupervisorOptions configure a Supervisor.
type SupervisorOptions struct {
	// Account names the bot account (its lease row).
	Account string
	// Open starts a session for the account; it is called each time this
	// replica becomes the holder.
	Open func() (Session, error)
	// TTL is the session lease's lifetime (default 6s). The holder renews
	// it every TTL/3 and stops sending when it has not renewed for
	// TTL*3/4, so it has stopped before anyone else can take over.
	TTL time.Duration
	// DatabaseURL, when set, is used for a LISTEN connection so deliveries
	// committed by other replicas wake the worker at once.
	DatabaseURL string
	// CloseTimeout bounds closing the session (default 10s).
	CloseTimeout time.Duration
	// StoppedRetry paces new sessions after one stopped for good: the
	// first wait is its Min, each further stop in a row doubles it up to
	// its Max (default 30s to 5m).
	StoppedRetry backoff.Policy
	// States lists the session states to export as
	// relay_ucwa_session_state (the session's own and the supervisor's);
	// a state met that is not listed is exported too.
	States  []string
	Logger  *slog.Logger
	Metrics *Metrics
}

// Supervisor makes this replica compete for the session lease of a bot
// account and, while it holds the lease, run the Worker with a fresh
// session. Exactly one replica holds a lease at a time.
type Supervisor struct {
	db     *store.DB
	worker *Worker
	opts   SupervisorOptions
	holder string
	log    *slog.Logger

	mu       sync.Mutex
	sess     Session // while this replica holds the lease
	stopped  bool    // waiting after a session that stopped for good
	stopLogs time.Time
}

// NewSupervisor returns a Supervisor for opts.Account.
func NewSupervisor(db *store.DB, worker *Worker, opts SupervisorOptions) *Supervisor {
	if opts.TTL <= 0 {
		opts.TTL = 6 * time.Second
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = worker.m
	}
	var states []string
	for _, st := range append([]string{StateStandby, StateStopped}, opts.States...) {
		if !slices.Contains(states, st) {
			states = append(states, st)
		}
	}
	opts.States = states
	if opts.StoppedRetry.Min <= 0 {
		opts.StoppedRetry = backoff.Policy{Min: 30 * time.Second, Max: 5 * time.Minute, Jitter: 0.1}
	}
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	holder := fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	return &Supervisor{db: db, worker: worker, opts: opts, holder: holder,
		log: opts.Logger.With(slog.String("account", opts.Account), slog.String("holder", holder))}
}

// Holder is this replica's name in the session lease.
func (s *Supervisor) Holder() string { return s.holder }

// Run competes for the lease until ctx ends. On the way out it drains the
// worker, closes the session and releases the lease, so another replica
// can take over at once.
func (s *Supervisor) Run(ctx context.Context) {
	retry := s.opts.TTL / 6
	defer s.flushOnExit(ctx) // after the goroutines below have stopped
	var wg sync.WaitGroup
	if s.opts.DatabaseURL != "" {
		wg.Go(func() { s.listen(ctx) })
	}
	wg.Go(func() { s.keepJournal(ctx) })
	defer wg.Wait()
	stops := backoff.Counter{Policy: s.opts.StoppedRetry}
	for ctx.Err() == nil {
		gen, ok, err := s.db.AcquireLease(ctx, s.opts.Account, s.holder, s.opts.TTL, true)
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "acquire session lease", slog.Any("err", err))
		}
		if ok {
			if stopErr := s.hold(ctx, gen); stopErr != nil {
				s.waitStopped(ctx, stopErr, stops.Next())
			} else {
				stops.Reset()
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// waitStopped reports a session that gave up for good and waits before
// this replica competes for the lease again. The error is logged at once,
// then at most every few minutes while it lasts.
func (s *Supervisor) waitStopped(ctx context.Context, why error, wait time.Duration) {
	s.mu.Lock()
	s.stopped = true
	logNow := time.Since(s.stopLogs) >= stoppedLogEvery
	if logNow {
		s.stopLogs = time.Now()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.stopped = false
		s.mu.Unlock()
	}()
	level := slog.LevelDebug
	if logNow {
		level = slog.LevelError
	}
	s.log.Log(ctx, level, "UCWA session stopped: the server refuses this bot account; nothing is sent, deliveries stay queued; session lease released so another replica may try",
		slog.Any("err", why), slog.Duration("retry_in", wait))
	backoff.Sleep(ctx, wait)
}

// stoppedLogEvery paces the error log of a session that keeps stopping.
const stoppedLogEvery = 5 * time.Minute

// keepJournal writes send outcomes kept while the database was away, also
// while this replica holds no lease (another replica may be sending).
func (s *Supervisor) keepJournal(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return // Run writes what is left once the sends have drained
		case <-t.C:
			s.worker.flushJournal(ctx)
		}
	}
}

// writeKept writes the outcomes kept through a database outage and gives
// back the claims whose answer was lost, trying for up to d. It reports
// whether nothing is left.
func (s *Supervisor) writeKept(ctx context.Context, d time.Duration) bool {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	for {
		if s.worker.flushJournal(wctx) && s.worker.releaseLost(wctx) {
			return true
		}
		if !backoff.Sleep(wctx, 250*time.Millisecond) {
			return false
		}
	}
}

// flushOnExit writes what is still kept once every send has drained, for
// up to DrainTimeout, and names the outcomes the database never took.
func (s *Supervisor) flushOnExit(ctx context.Context) {
	s.writeKept(ctx, s.worker.opts.DrainTimeout)
	if left := s.worker.Unrecorded(); len(left) > 0 {
		s.log.Error("stopping with send outcomes the database never took; these deliveries will be sent again, marked (resent)",
			slog.Any("attempts", left))
	}
}

// hold runs the worker while the lease is ours. It returns why the session
// stopped for good, or nil.
func (s *Supervisor) hold(ctx context.Context, gen int64) error {
	s.log.InfoContext(ctx, "session lease acquired: this replica sends", slog.Int64("generation", gen))
	s.opts.Metrics.leaseHeld.Set(1)
	defer s.opts.Metrics.leaseHeld.Set(0)

	// leased ends when the lease may no longer be ours: then every send
	// stops at once, with no drain. It does not end with ctx, so that on a
	// graceful shutdown the lease is still renewed while sends drain.
	leased, loseLease := context.WithCancel(context.WithoutCancel(ctx))
	defer loseLease()
	// claiming ends on shutdown, with the lease, or when the session stops.
	claiming, stopClaiming := context.WithCancel(ctx)
	defer stopClaiming()
	stopAfter := context.AfterFunc(leased, stopClaiming)
	defer stopAfter()
	var wg sync.WaitGroup
	wg.Go(func() { s.renew(leased, loseLease, gen) })

	sess, err := s.opts.Open()
	if err != nil {
		s.log.ErrorContext(ctx, "open session", slog.Any("err", err))
		loseLease()
		wg.Wait()
		s.release()
		select { // let another replica try
		case <-ctx.Done():
		case <-time.After(s.opts.TTL / 2):
		}
		return nil
	}
	s.mu.Lock()
	s.sess = sess
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.sess = nil
		s.mu.Unlock()
	}()
	wg.Go(func() {
		select {
		case <-sess.Stopped():
			stopClaiming()
		case <-claiming.Done():
		}
	})
	s.worker.Run(claiming, leased, sess, gen)
	var stopErr error
	select {
	case <-sess.Stopped():
		stopErr = sess.Err()
		if stopErr == nil {
			stopErr = errors.New("session stopped")
		}
	default:
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.CloseTimeout)
	defer cancel()
	if err := sess.Close(closeCtx); err != nil {
		s.log.WarnContext(closeCtx, "close session", slog.Any("err", err))
	}
	lostLease := leased.Err() != nil
	if !lostLease {
		// Before the lease goes: another holder would take over the
		// deliveries whose outcomes are still kept here.
		s.writeKept(ctx, s.worker.opts.DrainTimeout)
	}
	loseLease()
	wg.Wait()
	if lostLease {
		return stopErr
	}
	s.release()
	s.log.InfoContext(closeCtx, "session lease released")
	return stopErr
}

// renew keeps the lease alive. When it cannot renew in time (database
// unreachable) or finds the lease taken, it calls lose: this replica stops
// sending before the lease can expire on the database's side.
func (s *Supervisor) renew(ctx context.Context, lose context.CancelFunc, gen int64) {
	every := s.opts.TTL / 3
	safe := s.opts.TTL * 3 / 4
	lastStart := time.Now() // the acquire that gave us the lease started at most now
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		rctx, cancel := context.WithDeadline(ctx, lastStart.Add(safe))
		g, ok, err := s.db.AcquireLease(rctx, s.opts.Account, s.holder, s.opts.TTL, false)
		cancel()
		switch {
		case err == nil && ok && g == gen:
			lastStart = start
		case err == nil:
			s.log.ErrorContext(ctx, "session lease lost to another replica: stopping", slog.Int64("generation", g))
			lose()
			return
		case time.Since(lastStart) >= safe:
			s.log.ErrorContext(ctx, "session lease not renewed in time: stopping", slog.Any("err", err))
			lose()
			return
		default:
			s.log.WarnContext(ctx, "renew session lease", slog.Any("err", err))
		}
	}
}

func (s *Supervisor) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.db.ReleaseLease(ctx, s.opts.Account, s.holder); err != nil {
		s.log.Warn("release session lease", slog.Any("err", err))
	}
}

// listen wakes the worker on every NOTIFY of new deliveries, reconnecting
// with backoff. Missing one is harmless: the worker also polls.
func (s *Supervisor) listen(ctx context.Context) {
	retry := backoff.Counter{Policy: backoff.Policy{Min: 250 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}}
	for ctx.Err() == nil {
		err := func() error {
			conn, err := pgx.Connect(ctx, s.opts.DatabaseURL)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			if _, err := conn.Exec(ctx, "LISTEN "+store.NotifyChannel); err != nil {
				return err
			}
			retry.Reset()
			for {
				if _, err := conn.WaitForNotification(ctx); err != nil {
					return err
				}
				s.worker.Wake()
			}
		}()
		if ctx.Err() != nil {
			return
		}
		wait := retry.Next()
		s.log.DebugContext(ctx, "listen for new deliveries", slog.Any("err", err), slog.Duration("retry_in", wait))
		backoff.Sleep(ctx, wait)
	}
}

// State is the session state this replica reports: the session's own while
// it holds the lease, else standby, or stopped after a session gave up.
func (s *Supervisor) State() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.sess != nil:
		return s.sess.State()
	case s.stopped:
		return StateStopped
	}
	return StateStandby
}

// Describe and Collect make the Supervisor the collector of
// relay_ucwa_session_state: one series per state, 1 for the current one.
func (s *Supervisor) Describe(ch chan<- *prometheus.Desc) { ch <- sessionStateDesc }

// Collect reads the state at scrape time; it never waits on the network.
func (s *Supervisor) Collect(ch chan<- prometheus.Metric) {
	cur := s.State()
	seen := false
	for _, st := range s.opts.States {
		v := 0.0
		if st == cur {
			v, seen = 1, true
		}
		ch <- prometheus.MustNewConstMetric(sessionStateDesc, prometheus.GaugeValue, v, st)
	}
	if !seen {
		ch <- prometheus.MustNewConstMetric(sessionStateDesc, prometheus.GaugeValue, 1, cur)
	}
}

var sessionStateDesc = prometheus.NewDesc("relay_ucwa_session_state",
	"The UCWA session of the bot account as this replica sees it: 1 for the current state (standby: another replica sends; stopped: the server refuses the account, see the logs).",
	[]string{"state"}, nil)
