package deliver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay/store"
)

// Session is a bot account's sending session: a Poster that must be closed.
type Session interface {
	Poster
	Close(ctx context.Context) error
}

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
	Logger       *slog.Logger
	Metrics      *Metrics
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
	var wg sync.WaitGroup
	if s.opts.DatabaseURL != "" {
		wg.Go(func() { s.listen(ctx) })
	}
	defer wg.Wait()
	for ctx.Err() == nil {
		gen, ok, err := s.db.AcquireSession(ctx, s.opts.Account, s.holder, s.opts.TTL, true)
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "acquire session lease", slog.Any("err", err))
		}
		if ok {
			s.hold(ctx, gen)
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// hold runs the worker while the lease is ours.
func (s *Supervisor) hold(ctx context.Context, gen int64) {
	s.log.InfoContext(ctx, "session lease acquired: this replica sends", slog.Int64("generation", gen))
	s.opts.Metrics.sessionHeld.Set(1)
	defer s.opts.Metrics.sessionHeld.Set(0)

	// leased ends when the lease may no longer be ours: then every send
	// stops at once, with no drain. It does not end with ctx, so that on a
	// graceful shutdown the lease is still renewed while sends drain.
	leased, loseLease := context.WithCancel(context.WithoutCancel(ctx))
	defer loseLease()
	// claiming ends on shutdown or with the lease.
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
		return
	}
	s.worker.Run(claiming, leased, sess, gen)
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.CloseTimeout)
	defer cancel()
	if err := sess.Close(closeCtx); err != nil {
		s.log.WarnContext(closeCtx, "close session", slog.Any("err", err))
	}
	lostLease := leased.Err() != nil
	loseLease()
	wg.Wait()
	if lostLease {
		return
	}
	s.release()
	s.log.InfoContext(closeCtx, "session lease released")
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
		g, ok, err := s.db.AcquireSession(rctx, s.opts.Account, s.holder, s.opts.TTL, false)
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
	if err := s.db.ReleaseSession(ctx, s.opts.Account, s.holder); err != nil {
		s.log.Warn("release session lease", slog.Any("err", err))
	}
}

// listen wakes the worker on every NOTIFY of new deliveries, reconnecting
// with backoff. Missing one is harmless: the worker also polls.
func (s *Supervisor) listen(ctx context.Context) {
	backoff := 250 * time.Millisecond
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
			backoff = 250 * time.Millisecond
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
		s.log.DebugContext(ctx, "listen for new deliveries", slog.Any("err", err), slog.Duration("retry_in", backoff))
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
