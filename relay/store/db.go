// Package store keeps deliveries in PostgreSQL: the notifications that
// arrived, the deduplication window, the deliveries made from them and every
// attempt to send one. It wraps a pgx pool; SQL lives beside the method that
// runs it, one file per table.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tunes the store. Zero values take the defaults.
type Options struct {
	// MaxConns caps the pool (default 16).
	MaxConns int32
	// OpTimeout bounds every database operation made for a caller (default 5s).
	OpTimeout time.Duration
	// BatchMax caps how many ingest requests share one commit (default 64).
	BatchMax int
	// BatchMaxBytes caps the bytes (payloads and texts) of the ingest
	// requests sharing one commit (default 8 MiB); a larger request is
	// committed alone.
	BatchMaxBytes int
	// Committers is how many group commits may run at once (default 2).
	// A second starts only when enough requests wait for it (see
	// groupCommitter): PostgreSQL spends far less CPU per row on a batch
	// of eight than on eight of one.
	Committers int
	// OnIngestCommit, when set, is called after every group commit of
	// ingest requests with the number of requests it wrote and how long
	// the write took, for metrics.
	OnIngestCommit func(requests int, took time.Duration)
	// Logger receives the store's own log lines (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests pin it.
	Now func() time.Time
}

// DB is the relay's database handle. Its methods are safe for concurrent use.
type DB struct {
	pool   *pgxpool.Pool
	opts   Options
	logger *slog.Logger

	enqueuer  *groupCommitter[enqueueItem, EnqueueResult]
	finisher  *groupCommitter[Finish, FinishResult]
	enqueued  chan struct{}
	closeOnce sync.Once

	notifyOthers atomic.Bool
	notifyCh     chan struct{}
	notifyStop   chan struct{}
	notifyWG     sync.WaitGroup
}

// Open connects to the database at url and starts the group committers. It
// does not wait for the database to answer: a relay starts (and reports not
// ready) while PostgreSQL is still coming up.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", redactParseError(err))
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 5 * time.Second
	}
	if opts.BatchMax <= 0 {
		opts.BatchMax = 64
	}
	if opts.BatchMaxBytes <= 0 {
		opts.BatchMaxBytes = DefaultBatchMaxBytes
	}
	if opts.Committers <= 0 {
		opts.Committers = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg.MaxConns = opts.MaxConns
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 15 * time.Second
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > opts.OpTimeout {
		cfg.ConnConfig.ConnectTimeout = opts.OpTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	db := &DB{pool: pool, opts: opts, logger: opts.Logger, enqueued: make(chan struct{}, 1),
		notifyCh: make(chan struct{}, 1), notifyStop: make(chan struct{})}
	db.notifyWG.Add(1)
	go db.notifier()
	db.enqueuer = newGroupCommitter(opts.Committers, opts.BatchMax, opts.Logger, db.writeEnqueues)
	// Same lock order in every batch: no deadlock between two batches that
	// hold twins of each other.
	db.enqueuer.sortKey = func(it enqueueItem) string { return it.n.DedupKey }
	db.enqueuer.observe = opts.OnIngestCommit
	db.enqueuer.weight, db.enqueuer.maxWeight = enqueueWeight, opts.BatchMaxBytes
	db.finisher = newGroupCommitter(2, opts.BatchMax, opts.Logger, db.writeFinishes)
	// A finish carrying riders writes a row for each: a batch of them stays
	// within the operation timeout.
	db.finisher.weight, db.finisher.maxWeight = func(f Finish) int { return 1 + len(f.Carried) }, finishBatchRows
	return db, nil
}

// finishBatchRows caps the deliveries one commit of finishes writes.
const finishBatchRows = 512

// DefaultBatchMaxBytes is Options.BatchMaxBytes's default: enough for
// dozens of ordinary notifications per commit, while a burst of 1 MiB ones
// goes out in commits of eight, each written well within the operation
// timeout rather than 64 of them in one statement that exceeds it.
const DefaultBatchMaxBytes = 8 << 20

// enqueueWeight is what an ingest request weighs in a group commit: the
// bytes it sends, the payload and the message texts.
func enqueueWeight(it enqueueItem) int {
	w := len(it.n.Payload)
	for _, m := range it.n.Messages {
		w += len(m.Text)
	}
	return w
}

// redactParseError keeps a connection string (which may hold a password)
// out of error messages.
func redactParseError(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("invalid connection string")
	}
	return errors.New("invalid connection string")
}

// Close stops the group committers after the requests already queued are
// written, then closes the pool.
func (db *DB) Close() {
	db.closeOnce.Do(func() {
		db.enqueuer.close()
		db.finisher.close()
		close(db.notifyStop)
		db.notifyWG.Wait()
		db.pool.Close()
	})
}

// Pool exposes the underlying pool for the migrator and tests.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Ping checks the database answers within the operation timeout.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	if err := db.pool.Ping(ctx); err != nil {
		return classify("ping database", err)
	}
	return nil
}
