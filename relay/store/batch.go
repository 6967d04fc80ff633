package store

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// groupCommitter writes requests from many goroutines in shared
// transactions: each of its loops takes every request waiting (up to max)
// and writes them with one write call, one round trip and one commit, while
// the next batch gathers. Callers still wait for their own request's commit.
// That is what lets throughput grow with concurrency.
type groupCommitter[T, R any] struct {
	ch     chan *commitReq[T, R]
	stop   chan struct{}
	wg     sync.WaitGroup
	max    int
	logger *slog.Logger
	// write writes a batch in one transaction and returns one result per
	// item, or an error for the whole batch.
	write func(items []T) ([]R, error)
	// sortKey, when set, orders each batch so two batches take row locks in
	// the same order and cannot deadlock.
	sortKey func(T) string
}

type commitReq[T, R any] struct {
	ctx  context.Context
	item T
	done chan commitReply[R]
}

type commitReply[R any] struct {
	res R
	err error
}

func newGroupCommitter[T, R any](loops, max int, logger *slog.Logger, write func([]T) ([]R, error)) *groupCommitter[T, R] {
	g := &groupCommitter[T, R]{
		ch: make(chan *commitReq[T, R], 4*max), stop: make(chan struct{}),
		max: max, logger: logger, write: write,
	}
	for range loops {
		g.wg.Add(1)
		go g.loop()
	}
	return g
}

// do queues item and waits for its commit (or ctx). When ctx ends first the
// item may still be written: callers must be idempotent, as ours are.
func (g *groupCommitter[T, R]) do(ctx context.Context, item T) (R, error) {
	var zero R
	req := &commitReq[T, R]{ctx: ctx, item: item, done: make(chan commitReply[R], 1)}
	select {
	case g.ch <- req:
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-g.stop:
		return zero, errShuttingDown
	}
	select {
	case r := <-req.done:
		return r.res, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// close stops the loops after the requests already queued are written.
func (g *groupCommitter[T, R]) close() {
	close(g.stop)
	g.wg.Wait()
}

func (g *groupCommitter[T, R]) loop() {
	defer g.wg.Done()
	batch := make([]*commitReq[T, R], 0, g.max)
	for {
		batch = batch[:0]
		select {
		case r := <-g.ch:
			batch = append(batch, r)
		case <-g.stop:
			for {
				select {
				case r := <-g.ch:
					g.commit([]*commitReq[T, R]{r})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < g.max {
			select {
			case r := <-g.ch:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		g.commit(batch)
	}
}

// commit writes a batch. When it fails for a reason other than the
// database being unreachable, one bad request must not fail the others:
// each is then written on its own.
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
	results, err := g.write(items)
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
	g.logger.Warn("group commit failed, writing its requests one by one",
		slog.Int("requests", len(live)), slog.Any("err", err))
	for i, r := range live {
		res, err := g.write(items[i : i+1])
		if err != nil {
			r.done <- commitReply[R]{err: err}
			continue
		}
		r.done <- commitReply[R]{res: res[0]}
	}
}

func sortReqs[T, R any](reqs []*commitReq[T, R], key func(T) string) {
	slices.SortFunc(reqs, func(a, b *commitReq[T, R]) int { return strings.Compare(key(a.item), key(b.item)) })
}
