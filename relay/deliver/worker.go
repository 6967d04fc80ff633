// Package deliver sends the deliveries stored by ingest. The queue lives in
// PostgreSQL (package store): the Worker claims the head of each
// recipient's line, sends it through a Poster and records the outcome and
// the attempt in one transaction. The Supervisor makes sure exactly one
// replica at a time runs the Worker for a bot account.
//
// deliver knows nothing of UCWA: app hands it a Poster (the UCWA client).
package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/backoff"
	"github.com/skype-relay/relay/relay/store"
)

// Poster sends one message to one target. The UCWA client is the Poster in
// production; see relay.Outcome for what the answer means.
type Poster interface {
	Send(ctx context.Context, target relay.Target, operationID, text string) (relay.Outcome, error)
}

// Options configure a Worker. Zero values take the defaults.
type Options struct {
	// MaxInFlight caps deliveries being sent at once (default 128). Each
	// recipient has at most one in flight whatever this says.
	MaxInFlight int
	// Lease is how long a claim stays with this worker before another may
	// take the delivery (default 5m). It must exceed the longest send:
	// invitation wait plus confirmation wait plus request timeouts.
	Lease time.Duration
	// PollInterval is how often the queue is looked at without a wake-up
	// (default 1s): for retries falling due and for missed notifications.
	PollInterval time.Duration
	// DrainTimeout bounds how long sends in flight may finish on shutdown
	// before they are cancelled (default 10s).
	DrainTimeout time.Duration
	// TakeoverGrace is how long a worker with a new session lease waits
	// before it takes over deliveries another holder was sending (default
	// 2s): time for that holder to write the outcomes it kept through a
	// database outage, so that a confirmed message is not sent again.
	// Deliveries whose claim lease ran out are taken at once.
	TakeoverGrace time.Duration
	Retry         RetryPolicy
	// PolicyFunc returns the policy of a route (default DefaultPolicy).
	PolicyFunc func(route string) Policy
	// Lookahead returns the largest CoalesceAfter of the routes that
	// coalesce, 0 when none does (default: DefaultPolicy's). A claim counts
	// the deliveries waiting behind each head up to it, and no further.
	Lookahead func() int
	Logger    *slog.Logger
	Metrics   *Metrics
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Worker sends queued deliveries.
type Worker struct {
	db      *store.DB
	opts    Options
	log     *slog.Logger
	m       *Metrics
	wake    chan struct{}
	journal journal

	wakeMu    sync.Mutex
	wakeTimer *time.Timer // wakes the worker when the earliest retry falls due
	wakeAt    time.Time

	takeoverAt atomic.Int64 // unix nanos from which this Run may take over claims

	lostMu sync.Mutex
	lost   []string // tokens of claims whose answer never came
}

// noteLostClaim remembers a claim whose answer never came: its rows, if it
// committed, are given back before the next claim (nothing was sent).
func (w *Worker) noteLostClaim(token string) {
	w.lostMu.Lock()
	w.lost = append(w.lost, token)
	w.lostMu.Unlock()
}

// releaseLost gives back the rows of lost claims, and reports whether none
// is left to give back.
func (w *Worker) releaseLost(ctx context.Context) bool {
	w.lostMu.Lock()
	defer w.lostMu.Unlock()
	if len(w.lost) == 0 {
		return true
	}
	n, err := w.db.ReleaseClaims(ctx, w.lost)
	if err != nil {
		return false
	}
	if n > 0 {
		w.log.InfoContext(ctx, "gave back deliveries claimed as the database went away (never sent)", slog.Int64("deliveries", n))
	}
	w.lost = nil
	return true
}

func (w *Worker) takeover() bool { return time.Now().UnixNano() >= w.takeoverAt.Load() }

func newClaimToken() string { return fmt.Sprintf("claim-%016x", rand.Uint64()) }

// NewWorker returns a Worker on db.
func NewWorker(db *store.DB, opts Options) *Worker {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 128
	}
	if opts.Lease <= 0 {
		opts.Lease = 5 * time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.TakeoverGrace <= 0 {
		opts.TakeoverGrace = 2 * time.Second
	}
	if opts.PolicyFunc == nil {
		opts.PolicyFunc = func(string) Policy { return DefaultPolicy() }
	}
	if opts.Lookahead == nil {
		opts.Lookahead = func() int { return DefaultPolicy().CoalesceAfter }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Retry = opts.Retry.withDefaults()
	return &Worker{db: db, opts: opts, log: opts.Logger, m: opts.Metrics, wake: make(chan struct{}, 1)}
}

// Wake makes the worker look at the queue now (new deliveries committed).
// It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// wakeFor makes the worker look at the queue at t, when a retry falls due,
// rather than at the next poll: a session back after a failover is used at
// once. Only the earliest such time is kept.
func (w *Worker) wakeFor(t time.Time) {
	d := t.Sub(w.opts.Now())
	if d <= 0 || d >= w.opts.PollInterval {
		return // the poll or an earlier wake-up covers it
	}
	w.wakeMu.Lock()
	defer w.wakeMu.Unlock()
	now := time.Now()
	if w.wakeTimer != nil && w.wakeAt.After(now) && !w.wakeAt.After(now.Add(d)) {
		return
	}
	if w.wakeTimer != nil {
		w.wakeTimer.Stop()
	}
	w.wakeAt = now.Add(d)
	w.wakeTimer = time.AfterFunc(d, w.Wake)
}

// Run sends deliveries through p, claiming as session generation gen,
// until ctx ends. Then it stops claiming and lets sends in flight finish for
// up to DrainTimeout; abort, when it ends first, cancels them at once (the
// session was lost: nothing may be sent any more).
func (w *Worker) Run(ctx, abort context.Context, p Poster, gen int64) {
	sendCtx, cancelSends := context.WithCancel(abort)
	defer cancelSends()
	done := make(chan struct{}, w.opts.MaxInFlight)
	var wg sync.WaitGroup
	inFlight := 0
	tick := time.NewTicker(w.opts.PollInterval)
	defer tick.Stop()
	failing := false
	var failingSince time.Time
	w.takeoverAt.Store(time.Now().Add(w.opts.TakeoverGrace).UnixNano())

	for ctx.Err() == nil {
		// Outcomes kept while the database was away are written before
		// anything is claimed: a claim could otherwise take back, and
		// resend, a delivery whose send the server had confirmed.
		// Claims whose answer was lost are given back first, too.
		if free := w.opts.MaxInFlight - inFlight; free > 0 && w.flushJournal(context.WithoutCancel(ctx)) &&
			w.releaseLost(context.WithoutCancel(ctx)) {
			// Not cancelled mid-statement by a shutdown: a claim that
			// committed but whose answer was lost would strand its rows.
			token := newClaimToken()
			claimed, err := w.db.Claim(context.WithoutCancel(ctx), w.opts.Now(), store.ClaimOptions{
				Limit: free, Lease: w.opts.Lease, Gen: gen, Token: token, Takeover: w.takeover(), Lookahead: w.opts.Lookahead()})
			if err != nil {
				w.noteLostClaim(token)
			}
			switch {
			case err != nil && ctx.Err() == nil:
				w.m.claimErrors.Inc()
				// Said at once, then again every half minute while it lasts.
				if !failing || time.Since(failingSince) > 30*time.Second {
					w.log.WarnContext(ctx, "claim deliveries", slog.Any("err", err))
					failingSince = time.Now()
				}
				failing = true
			case err == nil:
				if failing {
					w.log.InfoContext(ctx, "claiming deliveries again")
				}
				failing = false
			}
			for _, c := range claimed {
				inFlight++
				wg.Go(func() {
					defer func() { done <- struct{}{} }()
					// Keep the recipient's line moving in this goroutine:
					// each finish claims the next delivery in its commit.
					next := &c
					for next != nil && ctx.Err() == nil && abort.Err() == nil {
						next = w.process(sendCtx, ctx, p, *next)
					}
					if next != nil {
						// Claimed by the last finish just as claiming stopped:
						// give it back untouched, not as a possibly-sent one.
						w.release(*next)
					}
				})
			}
			w.m.inFlight.Set(float64(inFlight))
		}
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-w.db.Enqueued():
		case <-done:
			inFlight--
			// Take every other finished send too before claiming again.
			for drained := false; !drained; {
				select {
				case <-done:
					inFlight--
				default:
					drained = true
				}
			}
		case <-tick.C:
		}
	}

	// Shutdown: no more claims; give the sends in flight their chance.
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-abort.Done():
	case <-time.After(w.opts.DrainTimeout):
		w.log.Warn("sends still in flight after the drain timeout; cancelling them")
	}
	cancelSends()
	<-finished
	w.m.inFlight.Set(0)
}

// process sends one claimed delivery and records what became of it. It
// returns the recipient's next delivery when the finish claimed it, which
// it does only while claiming (not during a shutdown's drain).
func (w *Worker) process(ctx, claiming context.Context, p Poster, c store.Claimed) *store.Claimed {
	policy := w.opts.PolicyFunc(c.Route)
	plan := Prepare(c, policy, w.opts.Now())
	if plan.CheckSupersede {
		by, err := w.db.Supersede(ctx, c, supersedeNote, w.opts.Now())
		if err != nil {
			// Sending now could duplicate what a committed supersession
			// already replaced: give the delivery back and decide later.
			w.log.WarnContext(ctx, "check supersession", slog.String("operation_id", c.OperationID), slog.Any("err", err))
			w.release(c)
			return nil
		}
		if by != "" {
			w.log.InfoContext(ctx, "delivery superseded", slog.String("operation_id", c.OperationID), slog.String("by", by))
			w.m.finished.WithLabelValues(string(relay.StateSuperseded)).Inc()
			return nil // the main loop claims the resolved one
		}
	}
	if !plan.Send {
		return w.record(ctx, claiming, c, plan.Finish)
	}

	text := plan.Text
	var riders []store.Claimed
	if Coalesces(c, plan, policy) && ctx.Err() == nil {
		riders, text = w.gather(ctx, c, plan.Text, policy)
	}

	opID := fmt.Sprintf("%s.%d", c.OperationID, c.Attempt)
	start := w.opts.Now()
	// The send must end, and its outcome be recorded, before the claim's
	// lease runs out: after that the delivery may be claimed again.
	sendCtx, cancel := context.WithTimeout(ctx, w.opts.Lease*3/4)
	out, err := p.Send(sendCtx, c.Target, opID, text)
	cancel()
	end := w.opts.Now()
	if out.Kind == 0 && err != nil && out.Detail == "" {
		out.Detail = err.Error()
	}
	if out.Latency == 0 {
		out.Latency = end.Sub(start)
	}
	if out.OperationID == "" {
		out.OperationID = opID
	}
	out, alone := CombinedOutcome(out, len(riders))
	f := Decide(c, out, policy, w.opts.Retry, end, rand.Float64())
	f.Alone = alone
	kind := out.Kind
	if kind == 0 {
		kind = relay.RetryLater // no outcome: nothing was sent
	}
	f.Record = &store.AttemptRecord{
		UCWAOperationID: out.OperationID, Outcome: kind.String(), Pool: out.Pool, HTTPStatus: out.HTTPStatus,
		Code: out.Code, Subcode: out.Subcode, Reason: out.Reason, Error: out.Detail, Latency: out.Latency,
		StartedAt: start, FinishedAt: end, Carried: len(riders),
	}
	w.m.attempts.WithLabelValues(f.Record.Outcome, out.Reason).Add(float64(1 + len(riders)))
	if f.State == relay.StateDelivered {
		w.m.latency.Observe(end.Sub(c.QueuedAt).Seconds())
	}
	for _, r := range riders {
		cf := DecideCarried(f, r, out, w.opts.PolicyFunc(r.Route), w.opts.Retry, end, rand.Float64())
		cf.Alone = alone
		rec := *f.Record
		rec.Carried, rec.CarriedBy = 0, c.OperationID
		cf.Record = &rec
		f.Carried = append(f.Carried, cf)
		if cf.State == relay.StateDelivered {
			w.m.latency.Observe(end.Sub(r.QueuedAt).Seconds())
		}
	}
	if len(riders) > 0 {
		w.m.coalesced.Inc()
		w.m.carried.Add(float64(len(riders)))
	}
	return w.record(ctx, claiming, c, f)
}

// gather claims the deliveries waiting behind head that may ride in its
// message (see Ride), as many as fit in one message of the route's
// MaxMessageBytes, and returns them with the message's text. When the
// database does not answer, head goes alone: its message is due, and the
// riders' claim, if it committed unseen, is given back before the next.
func (w *Worker) gather(ctx context.Context, head store.Claimed, headText string, p Policy) ([]store.Claimed, string) {
	now := w.opts.Now()
	texts := []string{headText}
	size := len(headText)
	token := newClaimToken()
	riders, err := w.db.ClaimRiders(context.WithoutCancel(ctx), head,
		store.RiderClaim{Now: now, Lease: w.opts.Lease, Token: token, Takeover: w.takeover()},
		func(r store.Rider) bool {
			text, ok := Ride(head, r, w.opts.PolicyFunc(r.Route), now)
			if !ok || CoalescedLen(len(texts)+1, size+len(text)) > p.MaxMessageBytes {
				return false
			}
			texts = append(texts, text)
			size += len(text)
			return true
		})
	if err != nil {
		w.noteLostClaim(token)
		w.log.WarnContext(ctx, "claim the deliveries waiting behind one; sending it alone",
			slog.String("operation_id", head.OperationID), slog.Any("err", err))
		return nil, headText
	}
	if len(riders) == 0 {
		return nil, headText
	}
	return riders, Coalesce(texts)
}

// supersedeNote goes in front of a resolved message that replaces firing
// messages never sent; %d is how many.
const supersedeNote = "(Resolved before relay could deliver the firing notification; %d message(s) replaced by this one.)\n"

// record writes f. While the worker is still claiming (decided anew on
// every try), the same commit claims the recipient's next delivery, which
// record returns. When the database does not take it within a few tries,
// the outcome goes to the journal, which writes it once the database is
// back, before this worker claims anything again: a send the server
// confirmed is never sent again for want of a row.
func (w *Worker) record(ctx, claiming context.Context, c store.Claimed, f store.Finish) *store.Claimed {
	ctx = context.WithoutCancel(ctx)
	retry := backoff.Counter{Policy: backoff.Policy{Min: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2}}
	f.ClaimNext = nil
	for {
		f.Now = w.opts.Now()
		// Once a try asked for the next delivery, every later try does: the
		// earlier commit may have claimed it with its answer lost, and the
		// same request takes it back (the caller gives it back when
		// claiming has stopped meanwhile).
		if f.ClaimNext == nil && claiming.Err() == nil {
			f.ClaimNext = &store.NextClaim{Recipient: c.Target.To, Lease: w.opts.Lease, Takeover: w.takeover(), Lookahead: w.opts.Lookahead()}
		}
		res, err := w.db.Finish(ctx, f)
		if err == nil {
			w.logFinish(ctx, c, f, res.Recorded)
			for i, cf := range f.Carried {
				w.logCarried(ctx, c, cf, i < len(res.CarriedRecorded) && res.CarriedRecorded[i])
			}
			if res.Recorded && f.State == relay.StatePending {
				w.wakeFor(f.NextAttemptAt)
			}
			return res.Next
		}
		giveUp := retry.Failures() >= recordTries || claiming.Err() != nil
		switch {
		case !errors.Is(err, relay.ErrUnavailable) && f.Record != nil:
			// Not the database being away but a write it refuses: the
			// state matters more than the audit row, so try without it.
			w.log.ErrorContext(ctx, "could not record a delivery's attempt; recording its outcome without it",
				slog.String("operation_id", c.OperationID), slog.String("state", string(f.State)), slog.Any("err", err))
			f = f.WithoutRecords()
			continue
		case !errors.Is(err, relay.ErrUnavailable):
			// Keeping it would only block claiming. The delivery is taken
			// back after its lease and sent again, marked.
			w.log.ErrorContext(ctx, "could not record a delivery's outcome", slog.String("operation_id", c.OperationID),
				slog.String("state", string(f.State)), slog.Any("err", err))
			giveUp = true
		case giveUp:
			w.log.WarnContext(ctx, "delivery outcome kept until the database is back", slog.String("operation_id", c.OperationID),
				slog.String("state", string(f.State)), slog.Any("err", err))
			w.journal.add(c, f)
			w.m.unrecorded.Set(float64(w.journal.len()))
		}
		if giveUp {
			if f.ClaimNext != nil {
				// A commit may have claimed the recipient's next delivery.
				w.noteLostClaim(store.NextClaimToken(c.OperationID, c.Attempt))
			}
			return nil
		}
		time.Sleep(retry.Next())
	}
}

// recordTries is how often record tries the database (about 1.5 s in all)
// before leaving the outcome to the journal.
const recordTries = 4

// release gives a claimed delivery that was never tried back to the queue.
func (w *Worker) release(c store.Claimed) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.db.Release(ctx, c); err != nil {
		// Its lease expires, or a newer session generation takes it over.
		w.log.WarnContext(ctx, "give back an unsent delivery", slog.String("operation_id", c.OperationID), slog.Any("err", err))
	}
}

// logCarried logs and counts the finish of a delivery carried in head's
// message.
func (w *Worker) logCarried(ctx context.Context, head store.Claimed, f store.Finish, ok bool) {
	w.logOutcome(ctx, f, ok, "carried delivery outcome not recorded: the claim is no longer current",
		slog.String("operation_id", f.OperationID), slog.Int("attempt", f.Attempt), slog.String("carried_by", head.OperationID))
}

func (w *Worker) logFinish(ctx context.Context, c store.Claimed, f store.Finish, ok bool) {
	w.logOutcome(ctx, f, ok,
		"delivery outcome not recorded: the claim is no longer current (taken over, or recorded by a try whose answer was lost)",
		slog.String("operation_id", c.OperationID), slog.Int("attempt", c.Attempt),
		slog.String("route", c.Route), slog.String("conversation", c.Conversation))
}

// logOutcome logs finish f at the level its state calls for (or
// notRecorded when its claim was no longer current) and counts it.
func (w *Worker) logOutcome(ctx context.Context, f store.Finish, ok bool, notRecorded string, attrs ...slog.Attr) {
	attrs = append(attrs, slog.String("state", string(f.State)))
	if f.LastError != "" {
		attrs = append(attrs, slog.String("error", f.LastError))
	}
	switch {
	case !ok:
		w.log.LogAttrs(ctx, slog.LevelWarn, notRecorded, attrs...)
		return
	case f.State == relay.StateDead:
		w.log.LogAttrs(ctx, slog.LevelError, "delivery dead", attrs...)
	case f.State == relay.StatePending || f.State == relay.StateUncertain:
		w.log.LogAttrs(ctx, slog.LevelWarn, "delivery attempt failed", attrs...)
	default:
		w.log.LogAttrs(ctx, slog.LevelDebug, "delivery finished", attrs...)
	}
	w.m.finished.WithLabelValues(string(f.State)).Inc()
}
