package ucwa

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/skype-relay/relay/relay"
)

// maxAttempts bounds the attempts of one Send when the server did not act
// on the message (conversation gone, application re-created).
const maxAttempts = 3

// Send delivers text as one instant message to target and reports what
// became of it. operationID (ASCII, at most 50 characters, unique per
// attempt) correlates the message with its delivery event.
//
// The outcome is Delivered only when the server's completed event with
// status Success carries operationID (or a read of the message shows
// Succeeded). Protocol trouble is always an outcome, never an error:
// RetryLater (not accepted; RetryAfter suggests a delay), Permanent (the
// recipient or this message is refused), Uncertain (maybe accepted but not
// confirmed, e.g. the pool failed over in between; RetryAfter carries the
// server's Retry-After when it gave one).
//
// Session is set on RetryLater outcomes whose reason is caused by the
// session, the server, its pool or links, or the bot's sign-in
// (Reason.SessionCaused): the message is not to blame. Only what is about
// the message or its recipient is Permanent or leaves Session unset.
// While the failover procedure pauses (§9.4) Send waits for the rebuild
// when the pause ends within a few seconds (rebuildWait), and sends on the
// new session; when the pause is longer, or the rebuild fails again, it
// returns RetryLater with the time left as RetryAfter. Without a request:
// while the pool asked us to wait or is rate limited, RetryLater
// "throttled" with the wait left; once the client stopped, RetryLater
// "stopped", at once.
//
// The error is non-nil only when ctx ends or the client is closed; the
// outcome is filled in then too (Uncertain if the message may have been
// accepted). Concurrent sends to the same target are sent one at a time,
// in call order.
func (c *Client) Send(ctx context.Context, target relay.Target, operationID, text string) (relay.Outcome, error) {
	start := time.Now()
	out, err := c.send(ctx, target, operationID, text)
	out.OperationID = operationID
	out.Latency = time.Since(start)
	if out.Reason == "" {
		out.Reason = string(ReasonOK)
	}
	out.Session = out.Kind == relay.RetryLater && Reason(out.Reason).SessionCaused()
	if out.Kind != relay.Delivered {
		c.log.InfoContext(ctx, "ucwa send not delivered", "operation_id", operationID, "outcome", out.Kind.String(),
			"reason", out.Reason, "pool", out.Pool, "status", out.HTTPStatus, "code", out.Code,
			"subcode", out.Subcode, "detail", out.Detail)
	}
	return out, err
}

func validOperationID(id string) bool {
	if id == "" || len(id) > maxOperationIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func (c *Client) send(ctx context.Context, target relay.Target, opID, text string) (relay.Outcome, error) {
	if !validOperationID(opID) {
		return *outcome(relay.Permanent, ReasonInvalid, "operationId must be 1-50 printable ASCII characters"), nil
	}
	if len(target.To) < 5 || !equalFoldPrefix(target.To, "sip:") {
		return *outcome(relay.Permanent, ReasonInvalid, "target To must be a sip: URI"), nil
	}
	if text == "" {
		return *outcome(relay.Permanent, ReasonInvalid, "empty message"), nil
	}
	select {
	case <-c.closing:
		return *outcome(relay.RetryLater, ReasonClosed, ""), ErrClosed
	default:
	}
	l := c.lane(target)
	defer c.releaseLane(l)
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return *outcome(relay.RetryLater, ReasonCanceled, ""), ctx.Err()
	case <-c.closing:
		return *outcome(relay.RetryLater, ReasonClosed, ""), ErrClosed
	}
	defer func() { <-l.sem }()

	var last relay.Outcome
	for range maxAttempts {
		st, err := c.waitSession(ctx)
		if err == nil && st.phase == phaseHolding && time.Until(st.holdUntil) <= rebuildWait {
			st, err = c.waitRebuild(ctx, st)
		}
		if err != nil {
			r := ReasonCanceled
			if errors.Is(err, ErrClosed) {
				r = ReasonClosed
			}
			return *outcome(relay.RetryLater, r, ""), err
		}
		if st.sess == nil {
			if st.phase == phaseStopped {
				o := outcome(relay.RetryLater, ReasonStopped, st.detail)
				o.RetryAfter = c.timers.FailoverMax
				return *o, nil
			}
			o := outcome(relay.RetryLater, st.reason, "failing over: "+st.detail)
			o.RetryAfter = max(time.Until(st.holdUntil), holdRetryFloor)
			return *o, nil
		}
		s := st.sess
		res, err := s.sendOn(ctx, l, target, opID, text)
		res.out.Pool = s.pool
		if err != nil || !res.again {
			return res.out, err
		}
		last = res.out
	}
	return last, nil
}

// A Send that finds the failover procedure pausing waits for the rebuild
// when the pause ends within rebuildWait: with the default timers the first
// pauses of a failover (0.5-1.5 s, 2 s) are waited, so a backup that is
// ready takes the message in the same call rather than in a retry that
// comes after the rebuild. Past that, Send returns RetryLater with the time
// left, at least holdRetryFloor.
const (
	rebuildWait    = 3 * time.Second
	holdRetryFloor = 5 * time.Millisecond
)

// waitRebuild waits, from a holding state st, for the next rebuild to end:
// it returns the session once it is ready, or the state in which the
// rebuild failed again (holding) or the client stopped.
func (c *Client) waitRebuild(ctx context.Context, st *sessState) (*sessState, error) {
	select {
	case <-st.changed:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closing:
		return nil, ErrClosed
	}
	return c.waitSession(ctx)
}

func outcome(kind relay.OutcomeKind, reason Reason, detail string) *relay.Outcome {
	return &relay.Outcome{Kind: kind, Reason: string(reason), Detail: detail}
}

func equalFoldPrefix(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		a, b := s[i], p[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// waiter waits for one message's completed event.
type waiter struct {
	op   string
	href string
	ch   chan completion // buffered 1
}

// completeLocked hands c to the waiter once; caller holds d.mu.
func (w *waiter) completeLocked(d *dispatch, c completion) {
	if d.waitByOp[w.op] == w {
		delete(d.waitByOp, w.op)
	}
	if w.href != "" && d.waitByHref[w.href] == w {
		delete(d.waitByHref, w.href)
	}
	select {
	case w.ch <- c:
	default:
	}
}

// sendOn does one attempt on session s: conversation, POST, confirmation.
func (s *session) sendOn(ctx context.Context, l *lane, target relay.Target, opID, text string) (*step, error) {
	// Requests stop when the caller gives up or the session dies (freeze).
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	cv, st := s.conversation(rctx, l, target)
	if st != nil {
		if err := s.ctxErr(ctx); err != nil {
			return st, err
		}
		if s.isDead() {
			return s.deadStep(false), nil
		}
		return st, nil
	}

	// Register before posting: the completed event may beat the 201.
	w := &waiter{op: opID, ch: make(chan completion, 1)}
	d := &s.disp
	d.mu.Lock()
	if _, busy := d.waitByOp[opID]; busy {
		d.mu.Unlock()
		return failed(relay.Permanent, ReasonInvalid, "operationId already in flight"), nil
	}
	d.waitByOp[opID] = w
	sendURL := cv.sendMessage // the event loop may replace it
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.waitByOp[opID] == w {
			delete(d.waitByOp, opID)
		}
		if w.href != "" && d.waitByHref[w.href] == w {
			delete(d.waitByHref, w.href)
		}
		d.mu.Unlock()
	}()

	// The POST itself is not cut short when the session dies: its answer
	// tells whether the server took the message (410: it did not; 201: it
	// did, and the outcome is Uncertain). Close still aborts it.
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	pstop := context.AfterFunc(s.c.base, pcancel)
	defer pstop()
	u := withQuery(sendURL, "operationId", opID)
	resp, err := s.do(pctx, http.MethodPost, u, resSendMessage, "text/plain; charset=utf-8", []byte(text), 0)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			return failed(relay.RetryLater, ReasonNetwork, err.Error()), nil
		}
		switch {
		case ae.Status == 0 && ae.NotSent:
			if cerr := s.ctxErr(ctx); cerr != nil {
				return failed(relay.RetryLater, ReasonCanceled, ""), cerr
			}
			if s.isDead() {
				return s.deadStep(false), nil
			}
			return s.errorStep(err), nil
		case ae.Status == 0, ae.Status == http.StatusInternalServerError, ae.Status == http.StatusGatewayTimeout:
			// The server may have acted (§10.2, §10.3): wait for the event.
			st, err := s.await(ctx, cv, w, false, ae)
			if st.out.Kind == relay.Uncertain && st.out.RetryAfter == 0 {
				st.out.RetryAfter = ae.RetryAfter
			}
			return st, err
		}
		st := s.errorStep(err)
		if act, _ := classify(ae); act == actRebuildConv {
			s.drop(cv, "sendMessage refused")
			l.conv = nil
		}
		return st, nil
	}
	loc := s.abs(resp.header.Get("Location"))
	if loc != "" {
		d.mu.Lock()
		w.href = loc
		if c, ok := d.takeOrphan(loc); ok {
			w.completeLocked(d, c)
		} else if d.waitByOp[opID] == w {
			d.waitByHref[loc] = w
		}
		d.mu.Unlock()
	}
	s.healthy.Store(true)
	return s.await(ctx, cv, w, true, nil)
}

// await waits for the message's completed event. accepted says a 201 came;
// without it (an ambiguous transport error, 500, 504) only a Success event
// counts and silence is Uncertain.
func (s *session) await(ctx context.Context, cv *conv, w *waiter, accepted bool, ae *apiError) (*step, error) {
	status := http.StatusCreated
	if !accepted {
		status = ae.Status
	}
	timer := time.NewTimer(s.c.timers.MessageWait)
	defer timer.Stop()
	var c completion
	select {
	case c = <-w.ch:
	case <-s.done:
		select {
		case c = <-w.ch:
		default:
			st := s.deadStep(true)
			st.out.HTTPStatus = status
			return st, nil
		}
	case <-timer.C:
		return s.confirmByRead(ctx, w, status, ae), nil
	case <-ctx.Done():
		// The caller stopped waiting (its claim or lease lapsed, or a
		// shutdown ran out of time), but the message is with the server
		// already: a confirmation about to arrive is worth a moment more,
		// since without it the message counts as unconfirmed and is sent
		// again. Nothing new is sent meanwhile.
		grace := time.NewTimer(min(confirmGrace, s.c.timers.MessageWait))
		defer grace.Stop()
		select {
		case c = <-w.ch:
		case <-grace.C:
		case <-s.done:
		case <-s.c.closing:
		}
		if c.status == "" {
			st := failed(relay.Uncertain, ReasonCanceled, "gave up waiting for confirmation")
			st.out.HTTPStatus = status
			return st, ctx.Err()
		}
	case <-s.c.closing:
		st := failed(relay.Uncertain, ReasonClosed, "client closed before confirmation")
		st.out.HTTPStatus = status
		return st, ErrClosed
	}
	if c.status == "Success" {
		return &step{out: relay.Outcome{Kind: relay.Delivered, HTTPStatus: status, Reason: string(ReasonOK)}}, nil
	}
	// Peer-to-peer failure: the next attempt gets a fresh conversation.
	s.drop(cv, "message failed")
	st := failed(relay.RetryLater, ReasonMessageFailed, "message delivery failed")
	st.out.HTTPStatus, st.out.Code, st.out.Subcode = status, c.reason.Code, c.reason.Subcode
	st.out.RetryAfter = s.c.timers.RetryMin
	return st, nil
}

// confirmGrace is how long a send whose caller gave up still waits for the
// confirmation of a message the server took.
const confirmGrace = 2 * time.Second

// confirmByRead reads the message resource after the wait expired (§6.3):
// Succeeded is delivered, Failed is a retry, anything else is Uncertain.
// The read waits for the host's gate (a Retry-After, the rate limit of a
// failing host), within the request timer and the caller's context: a
// read given up for a pause would leave a confirmed message to be resent.
func (s *session) confirmByRead(ctx context.Context, w *waiter, status int, ae *apiError) *step {
	st := failed(relay.Uncertain, ReasonUnconfirmed, "no delivery confirmation in time")
	st.out.HTTPStatus = status
	if ae != nil {
		st.out.Code, st.out.Subcode = ae.Code, ae.Subcode
		st.out.Detail = "no answer and no delivery event: " + ae.Error()
	}
	if w.href == "" || s.isDead() {
		return st
	}
	u, err := parseAbs(w.href)
	if err != nil {
		return st
	}
	rctx, cancel := context.WithTimeout(ctx, s.c.timers.Request)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	resp, err := s.do(rctx, http.MethodGet, u, resMessage, "", nil, flagWait)
	if err != nil {
		return st
	}
	var m halResource
	if decodeJSON(resp.body, &m) != nil {
		return st
	}
	switch m.Status {
	case "Succeeded":
		return &step{out: relay.Outcome{Kind: relay.Delivered, HTTPStatus: status, Reason: string(ReasonOK),
			Detail: "confirmed by reading the message"}}
	case "Failed":
		f := failed(relay.RetryLater, ReasonMessageFailed, "message resource reports Failed")
		f.out.HTTPStatus, f.out.RetryAfter = status, s.c.timers.RetryMin
		return f
	}
	return st
}

// ctxErr reports why the caller's wait ended, if it did.
func (s *session) ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.c.closing:
		return ErrClosed
	default:
		return nil
	}
}
