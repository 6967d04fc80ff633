package store

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skype-relay/relay/relay"
)

// groupCommitter writes requests from many goroutines in shared
// transactions: a batch is every request waiting (up to max), written with
// one write call, one round trip and one commit, while the next batch
// gathers. Callers still wait for their own request's commit. That is what
// lets throughput grow with concurrency.
//
// There are no committer goroutines to hand requests to: a caller that
// finds no batch in progress commits the waiting requests itself (it
// leads), so a lone request costs no goroutine switch. While one batch is
// written, a further one (up to slots) starts only once spreadAt requests
// wait: a batch of one or two beside a running one costs PostgreSQL nearly
// a whole commit each, and they are better off in the next batch. A leader
// whose own request is answered while others still wait hands the rest to
// a new goroutine, which leads until the queue is empty; no caller waits
// longer than its own commit.
type groupCommitter[T, R any] struct {
	mu      sync.Mutex
	queue   []*commitReq[T, R]
	leaders int // goroutines committing now, at most slots
	slots   int
	stopped bool
	drained *sync.Cond // signalled when leaders drops to 0

	max int
	// weight, when set, is what an item weighs (its bytes), and a batch
	// stops short of maxWeight: one of a few large items cannot hold them
	// all in memory at once and carry them into one statement, whose
	// encoding and execution grow with its bytes. An item heavier than
	// maxWeight goes alone.
	weight    func(T) int
	maxWeight int
	logger    *slog.Logger
	// write writes a batch in one transaction and returns one result per
	// item, or an error for the whole batch.
	write func(items []T) ([]R, error)
	// sortKey, when set, orders each batch so two batches take row locks in
	// the same order and cannot deadlock.
	sortKey func(T) string
	// observe, when set, is told the size and duration of every write
	// (failed ones included, and the one-by-one writes after a batch
	// failed).
	observe func(rows int, took time.Duration)
}

// spreadAt is how many requests must wait before a batch starts beside one
// already running.
const spreadAt = 4

type commitReq[T, R any] struct {
	ctx    context.Context
	item   T
	weight int
	done   chan commitReply[R]
}

type commitReply[R any] struct {
	res R
	err error
}

func newGroupCommitter[T, R any](slots, batchMax int, logger *slog.Logger, write func([]T) ([]R, error)) *groupCommitter[T, R] {
	g := &groupCommitter[T, R]{slots: max(slots, 1), max: max(batchMax, 1), logger: logger, write: write}
	g.drained = sync.NewCond(&g.mu)
	return g
}

// do queues item and waits for its commit (or ctx). When ctx ends first the
// item may still be written: callers must be idempotent, as ours are. A
// caller that leads returns once its own request is committed, or after
// the batch it is writing when ctx ended meanwhile (a commit is bounded by
// the store's operation timeout).
func (g *groupCommitter[T, R]) do(ctx context.Context, item T) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	req := &commitReq[T, R]{ctx: ctx, item: item, done: make(chan commitReply[R], 1)}
	if g.weight != nil {
		req.weight = g.weight(item)
	}
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return zero, errShuttingDown
	}
	g.queue = append(g.queue, req)
	lead := g.leaders == 0 || (g.leaders < g.slots && len(g.queue) >= spreadAt)
	if lead {
		g.leaders++
	}
	g.mu.Unlock()
	if lead {
		g.lead(req)
	}
	select {
	case r := <-req.done:
		return r.res, r.err
	case <-ctx.Done():
		// Both may be ready: a request that was written says so.
		select {
		case r := <-req.done:
			return r.res, r.err
		default:
		}
		return zero, ctx.Err()
	}
}

// lead commits batches from the queue until it is empty. With own set (a
// caller leading), it stops once own is answered, or its context ended,
// and leaves what is still queued to a new goroutine: a caller waits for
// others' commits only until its own deadline.
func (g *groupCommitter[T, R]) lead(own *commitReq[T, R]) {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.leaders--
			if g.leaders == 0 {
				g.drained.Broadcast()
			}
			g.mu.Unlock()
			return
		}
		if own != nil && (len(own.done) > 0 || own.ctx.Err() != nil) {
			g.mu.Unlock()
			go g.lead(nil) // the leader count passes on with the work
			return
		}
		n := g.batchLen()
		batch := make([]*commitReq[T, R], n)
		copy(batch, g.queue)
		// Shift rather than reslice, so the queue's array does not grow
		// without bound under steady load.
		rest := copy(g.queue, g.queue[n:])
		clear(g.queue[rest:])
		g.queue = g.queue[:rest]
		g.mu.Unlock()
		g.commit(batch)
	}
}

// batchLen is how many of the queued requests the next batch takes: up to
// max, and with weight set no more than maxWeight, but always one.
func (g *groupCommitter[T, R]) batchLen() int {
	n := min(len(g.queue), g.max)
	if g.weight == nil {
		return n
	}
	total := 0
	for i, r := range g.queue[:n] {
		total += r.weight
		if total > g.maxWeight && i > 0 {
			return i
		}
	}
	return n
}

// close refuses new requests and returns once the requests already queued
// are written.
func (g *groupCommitter[T, R]) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	for g.leaders > 0 {
		g.drained.Wait()
	}
}

// commit writes a batch. When it fails because the database cannot do the
// work now, every request of it gets that error (and its sender retries).
// When it fails for any other reason, that is a bug that may well concern
// one request only (a value PostgreSQL refuses, a write that panics), and
// one bad request must not fail the others: each is then written on its
// own, so that only the culprit gets the error.
func (g *groupCommitter[T, R]) commit(batch []*commitReq[T, R]) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- commitReply[R]{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	if g.sortKey != nil {
		sortReqs(live, g.sortKey)
	}
	items := make([]T, len(live))
	for i, r := range live {
		items[i] = r.item
	}
	results, err := g.timedWrite(items)
	if err == nil {
		for i, r := range live {
			r.done <- commitReply[R]{res: results[i]}
		}
		return
	}
	if len(live) == 1 || isUnavailable(err) {
		for _, r := range live {
			r.done <- commitReply[R]{err: err}
		}
		return
	}
	g.logger.Error("group commit failed with an internal error, writing its requests one by one to find the one at fault",
		slog.Int("requests", len(live)), slog.Any("err", err))
	var down error // once the database is unavailable, the rest need not wait for it
	failed := 0
	for i, r := range live {
		if down != nil {
			r.done <- commitReply[R]{err: down}
			continue
		}
		res, err := g.timedWrite(items[i : i+1])
		if err != nil {
			failed++
			if isUnavailable(err) {
				down = err
			}
			r.done <- commitReply[R]{err: err}
			continue
		}
		r.done <- commitReply[R]{res: res[0]}
	}
	if failed == 0 && down == nil {
		g.logger.Error("every request of a failed group commit was written on its own: the batch write itself is at fault",
			slog.Int("requests", len(live)))
	}
}

// timedWrite is safeWrite, reported to observe.
func (g *groupCommitter[T, R]) timedWrite(items []T) ([]R, error) {
	start := time.Now()
	results, err := g.safeWrite(items)
	if g.observe != nil {
		g.observe(len(items), time.Since(start))
	}
	return results, err
}

// safeWrite is write, with a panic turned into an error for the batch: a
// leader is a caller's goroutine, and one that unwound would leave its
// batch unanswered and the committer without a leader. The error is an
// internal one, so commit then finds the request that panics.
func (g *groupCommitter[T, R]) safeWrite(items []T) (results []R, err error) {
	defer func() {
		if p := recover(); p != nil {
			g.logger.Error("group commit panicked", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			results, err = nil, fmt.Errorf("group commit: %w: panic: %v", relay.ErrInternal, p)
		}
	}()
	return g.write(items)
}

func sortReqs[T, R any](reqs []*commitReq[T, R], key func(T) string) {
	slices.SortFunc(reqs, func(a, b *commitReq[T, R]) int { return strings.Compare(key(a.item), key(b.item)) })
}
