package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
)

// These tests drive the group commit mechanism with a write function that
// records its batches; the store's own tests run it against PostgreSQL.

type recorder struct {
	mu      sync.Mutex
	batches [][]int
	active  atomic.Int32
	most    atomic.Int32
	gate    chan struct{} // when set, each write waits for a token
}

func (r *recorder) write(items []int) ([]int, error) {
	n := r.active.Add(1)
	defer r.active.Add(-1)
	for {
		m := r.most.Load()
		if n <= m || r.most.CompareAndSwap(m, n) {
			break
		}
	}
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(items))
	r.mu.Unlock()
	out := make([]int, len(items))
	for i, v := range items {
		out[i] = v * 10
	}
	return out, nil
}

func (g *groupCommitter[T, R]) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommitBatchesWhatWaits(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	g := newGroupCommitter(1, 64, slog.New(slog.DiscardHandler), r.write)
	defer g.close()

	results := make([]int, 7)
	errs := make([]error, 7)
	var wg sync.WaitGroup
	wg.Go(func() { results[0], errs[0] = g.do(context.Background(), 0) })
	waitFor(t, "the first write", func() bool { return r.active.Load() == 1 })
	for i := 1; i < 7; i++ {
		wg.Go(func() { results[i], errs[i] = g.do(context.Background(), i) })
	}
	// While the first commit runs, the other six queue up...
	waitFor(t, "six queued requests", func() bool { return g.queued() == 6 })
	r.gate <- struct{}{}
	// ...and go out together in the next one, committed by a goroutine
	// the first caller handed them to.
	r.gate <- struct{}{}
	wg.Wait()
	for i := range 7 {
		if errs[i] != nil || results[i] != i*10 {
			t.Errorf("request %d: got %d, %v; want %d", i, results[i], errs[i], i*10)
		}
	}
	if len(r.batches) != 2 || len(r.batches[0]) != 1 || len(r.batches[1]) != 6 {
		t.Fatalf("batches = %v, want [0] then the six others together", r.batches)
	}
}

func TestGroupCommitSlotsAndMax(t *testing.T) {
	r := &recorder{}
	const slots, batchMax, callers, each = 2, 5, 32, 50
	g := newGroupCommitter(slots, batchMax, slog.New(slog.DiscardHandler), func(items []int) ([]int, error) {
		time.Sleep(100 * time.Microsecond) // a commit takes a while
		return r.write(items)
	})
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				v := c*each + i
				got, err := g.do(context.Background(), v)
				if err != nil || got != v*10 {
					wrong.Add(1)
				}
			}
		})
	}
	wg.Wait()
	g.close()
	if wrong.Load() != 0 {
		t.Fatalf("%d requests got a wrong answer", wrong.Load())
	}
	if m := r.most.Load(); m > slots {
		t.Errorf("%d commits ran at once, want at most %d", m, slots)
	}
	seen := map[int]bool{}
	for _, b := range r.batches {
		if len(b) > batchMax {
			t.Errorf("batch of %d, max is %d", len(b), batchMax)
		}
		for _, v := range b {
			if seen[v] {
				t.Errorf("request %d written twice", v)
			}
			seen[v] = true
		}
	}
	if len(seen) != callers*each {
		t.Errorf("%d requests written, want %d", len(seen), callers*each)
	}
}

func TestGroupCommitCloseDrains(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	g := newGroupCommitter(1, 64, slog.New(slog.DiscardHandler), r.write)
	var wg sync.WaitGroup
	var answered atomic.Int32
	for i := range 4 {
		wg.Go(func() {
			if v, err := g.do(context.Background(), i); err == nil && v == i*10 {
				answered.Add(1)
			}
		})
		if i == 0 {
			// The first writes alone; the others queue behind it.
			waitFor(t, "the first write", func() bool { return r.active.Load() == 1 })
		}
	}
	waitFor(t, "a write with three queued", func() bool { return r.active.Load() == 1 && g.queued() == 3 })
	closed := make(chan struct{})
	go func() { g.close(); close(closed) }()
	waitFor(t, "close to refuse new requests", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.stopped
	})
	if _, err := g.do(context.Background(), 99); !errors.Is(err, errShuttingDown) {
		t.Fatalf("do after close: %v, want errShuttingDown", err)
	}
	select {
	case <-closed:
		t.Fatal("close returned before the queued requests were written")
	default:
	}
	close(r.gate) // let every write through
	<-closed
	wg.Wait()
	if answered.Load() != 4 {
		t.Fatalf("%d of 4 queued requests were written", answered.Load())
	}
}

func TestGroupCommitCancelledWhileQueued(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	g := newGroupCommitter(1, 64, slog.New(slog.DiscardHandler), r.write)
	defer g.close()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.do(context.Background(), 1) })
	waitFor(t, "the first write", func() bool { return r.active.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := g.do(ctx, 2); errc <- err }()
	waitFor(t, "the second request to queue", func() bool { return g.queued() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	close(r.gate)
	wg.Wait()
	g.close()
	for _, b := range r.batches {
		if slices.Contains(b, 2) {
			t.Fatalf("a request cancelled before its batch was written anyway: %v", r.batches)
		}
	}
}

func TestGroupCommitSecondBatchOnlyForEnough(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	g := newGroupCommitter(2, 64, slog.New(slog.DiscardHandler), r.write)
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.do(context.Background(), 0) })
	waitFor(t, "the first write", func() bool { return r.active.Load() == 1 })
	for i := 1; i < spreadAt; i++ {
		wg.Go(func() { _, _ = g.do(context.Background(), i) })
	}
	waitFor(t, "requests to queue", func() bool { return g.queued() == spreadAt-1 })
	time.Sleep(20 * time.Millisecond) // a wrongly started second write would be running by now
	if n := r.active.Load(); n != 1 {
		t.Fatalf("%d writes run with %d requests waiting, want 1", n, spreadAt-1)
	}
	wg.Go(func() { _, _ = g.do(context.Background(), spreadAt) })
	waitFor(t, "a second write once enough wait", func() bool { return r.active.Load() == 2 })
	close(r.gate)
	wg.Wait()
	g.close()
	if len(r.batches) != 2 || len(r.batches[0])+len(r.batches[1]) != spreadAt+1 {
		t.Fatalf("batches = %v, want the first alone and the rest together", r.batches)
	}
}

func TestGroupCommitSurvivesAPanickingWrite(t *testing.T) {
	g := newGroupCommitter(1, 64, slog.New(slog.DiscardHandler), func(items []int) ([]int, error) {
		if slices.Contains(items, 13) {
			panic("unlucky")
		}
		return slices.Clone(items), nil
	})
	if _, err := g.do(context.Background(), 13); err == nil {
		t.Fatal("a write that panicked reported success")
	}
	// The committer still has a leader slot free and answers.
	if v, err := g.do(context.Background(), 7); err != nil || v != 7 {
		t.Fatalf("after a panic: %d, %v; want 7", v, err)
	}
	g.close()
}

func TestGroupCommitPrefersTheResultToAnEndedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := newGroupCommitter(1, 64, slog.New(slog.DiscardHandler), func(items []int) ([]int, error) {
		cancel() // the caller's context ends while its row is written
		return slices.Clone(items), nil
	})
	defer g.close()
	for range 20 {
		if v, err := g.do(ctx, 5); err != nil || v != 5 {
			t.Fatalf("written while its context ended: %d, %v; want the result", v, err)
		}
		ctx, cancel = context.WithCancel(context.Background())
	}
	cancel()
}

// formBatch makes the requests of items wait behind a write of first that
// is held, so that they are then written together as one batch. It returns
// each request's result and error, once all are answered.
func formBatch(t *testing.T, g *groupCommitter[int, int], r *recorder, first int, items []int) ([]int, []error) {
	t.Helper()
	results := make([]int, len(items))
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.do(context.Background(), first) })
	waitFor(t, "the first write", func() bool { return r.active.Load() == 1 })
	for i, v := range items {
		wg.Go(func() { results[i], errs[i] = g.do(context.Background(), v) })
	}
	waitFor(t, "the requests to queue", func() bool { return g.queued() == len(items) })
	close(r.gate) // let every write through
	wg.Wait()
	return results, errs
}

func TestGroupCommitAPanickingWriteFailsOnlyItsRequest(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	g := newGroupCommitter(1, 64, slog.New(slog.DiscardHandler), func(items []int) ([]int, error) {
		if slices.Contains(items, 13) {
			<-r.gate
			panic("unlucky")
		}
		return r.write(items)
	})
	defer g.close()
	items := []int{1, 13, 2, 3}
	results, errs := formBatch(t, g, r, 0, items)
	for i, v := range items {
		switch {
		case v == 13:
			if !errors.Is(classify("enqueue", errs[i]), relay.ErrInternal) {
				t.Errorf("the request that panics: %v, want an internal error", errs[i])
			}
		case errs[i] != nil || results[i] != v*10:
			t.Errorf("request %d of the batch: %d, %v; want it written (%d)", v, results[i], errs[i], v*10)
		}
	}
	// The batch failed as a whole (and is not recorded), then each request
	// was written on its own (in the order they queued).
	slices.SortFunc(r.batches, slices.Compare)
	if want := [][]int{{0}, {1}, {2}, {3}}; !slices.EqualFunc(r.batches, want, slices.Equal) {
		t.Errorf("writes = %v, want %v", r.batches, want)
	}
}

func TestGroupCommitUnavailableFailsTheWholeBatch(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	var writes atomic.Int32
	g := newGroupCommitter(1, 64, slog.New(slog.DiscardHandler), func(items []int) ([]int, error) {
		if writes.Add(1) > 1 {
			<-r.gate
			return nil, fmt.Errorf("record notifications: %w", io.ErrUnexpectedEOF) // the connection died
		}
		return r.write(items)
	})
	defer g.close()
	_, errs := formBatch(t, g, r, 0, []int{1, 2, 3})
	for i, err := range errs {
		if !errors.Is(classify("enqueue", err), relay.ErrUnavailable) {
			t.Errorf("request %d: %v, want unavailable", i+1, err)
		}
	}
	if n := writes.Load(); n != 2 {
		t.Errorf("%d writes, want 2: the first, then the batch once (no one-by-one retry while the database is away)", n)
	}
}

func TestGroupCommitStopsWritingAloneOnceUnavailable(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	var writes atomic.Int32
	g := newGroupCommitter(1, 64, slog.New(slog.DiscardHandler), func(items []int) ([]int, error) {
		switch writes.Add(1) {
		case 1:
			return r.write(items)
		case 2:
			return nil, errors.New("record notifications: no result for key") // a bug: written one by one
		default:
			return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET} // and then the database went away
		}
	})
	defer g.close()
	_, errs := formBatch(t, g, r, 0, []int{1, 2, 3})
	for i, err := range errs {
		if !errors.Is(classify("enqueue", err), relay.ErrUnavailable) {
			t.Errorf("request %d: %v, want unavailable", i+1, err)
		}
	}
	if n := writes.Load(); n != 3 {
		t.Errorf("%d writes, want 3: the first, the batch, one alone; the others need not wait for a database that is away", n)
	}
}

func TestGroupCommitByteCap(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	g := newGroupCommitter(1, 64, slog.New(slog.DiscardHandler), r.write)
	// An item weighs a tenth of its value; a batch carries at most 10.
	g.weight, g.maxWeight = func(v int) int { return v / 10 }, 10
	defer g.close()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.do(context.Background(), 0) })
	waitFor(t, "the first write", func() bool { return r.active.Load() == 1 })
	items := []int{41, 42, 43, 300, 31, 32, 100}
	results := make([]int, len(items))
	errs := make([]error, len(items))
	for i, v := range items {
		// One at a time, so that they queue in this order.
		wg.Go(func() { results[i], errs[i] = g.do(context.Background(), v) })
		waitFor(t, "the request to queue", func() bool { return g.queued() == i+1 })
	}
	close(r.gate)
	wg.Wait()
	for i, v := range items {
		if errs[i] != nil || results[i] != v*10 {
			t.Errorf("request %d: %d, %v; want it written (%d)", v, results[i], errs[i], v*10)
		}
	}
	// 4+4 fit and a third 4 does not; 30 is over the cap and goes alone;
	// 3+3 fit and 10 more do not; 10 is exactly the cap.
	want := [][]int{{0}, {41, 42}, {43}, {300}, {31, 32}, {100}}
	if !slices.EqualFunc(r.batches, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", r.batches, want)
	}
}

func TestGroupCommitLeaderStopsAtItsDeadline(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	first := make(chan struct{})
	g := newGroupCommitter(2, 2, slog.New(slog.DiscardHandler), func(items []int) ([]int, error) {
		if items[0] == 0 { // the first write is held throughout
			r.active.Add(1)
			<-first
			r.active.Add(-1)
			return slices.Clone(items), nil
		}
		return r.write(items)
	})
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.do(context.Background(), 0) })
	waitFor(t, "the first write", func() bool { return r.active.Load() == 1 })
	for i := 1; i < spreadAt; i++ {
		wg.Go(func() { _, _ = g.do(context.Background(), i) })
		waitFor(t, "the request to queue", func() bool { return g.queued() == i })
	}
	// The next caller finds enough waiting and leads a second batch, of
	// the two requests ahead of its own.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := g.do(ctx, 99); errc <- err }()
	waitFor(t, "a second write", func() bool { return r.active.Load() == 2 })
	cancel()
	r.gate <- struct{}{} // the second batch is written
	// Its deadline passed: the caller hands the rest over and answers,
	// rather than write the other requests first.
	waitFor(t, "the leader whose context ended to answer", func() bool { return len(errc) == 1 })
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("the leader whose context ended: %v, want context.Canceled", err)
	}
	close(r.gate)
	close(first)
	wg.Wait()
	g.close()
	want := [][]int{{1, 2}, {3}}
	if !slices.EqualFunc(r.batches, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", r.batches, want)
	}
}
