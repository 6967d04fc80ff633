package ucwa

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skype-relay/relay/relay/backoff"
)

// phase is where the session of a Client stands.
type phase int

const (
	phaseIdle     phase = iota // nothing started yet
	phaseStarting              // discovery or application creation running
	phaseReady                 // an application and its event channel are up
	phaseHolding               // pausing between rebuilds (failover procedure)
	phaseStopped               // stopped for good; see reason and Client.Err
)

// sessState is one published state of the session. A new value replaces
// the old one and closes its changed channel, waking every waiter.
type sessState struct {
	phase     phase
	failing   bool     // phaseStarting within the failover procedure
	sess      *session // phaseReady only
	gen       uint64
	holdUntil time.Time
	reason    Reason
	detail    string
	changed   chan struct{}
}

// name is the phase as Status.Phase reports it, before what only a live
// session can tell (throttled).
func (st *sessState) name() string {
	switch st.phase {
	case phaseStarting:
		if st.failing {
			return PhaseFailingOver
		}
		return PhaseStarting
	case phaseReady:
		return PhaseReady
	case phaseHolding:
		return PhaseFailingOver
	case phaseStopped:
		return PhaseStopped
	}
	return PhaseIdle
}

func (c *Client) current() *sessState {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return c.state
}

func (c *Client) publish(st sessState) {
	st.changed = make(chan struct{})
	c.stateMu.Lock()
	old := c.state
	c.state = &st
	c.stateMu.Unlock()
	close(old.changed)
}

// ensureStarted starts the supervisor once, unless Close came first.
func (c *Client) ensureStarted() {
	c.startOnce.Do(func() {
		c.wg.Add(1)
		go c.supervise()
	})
}

// waitSession returns the session state once it is ready, holding or
// stopped. It waits while the session is starting.
func (c *Client) waitSession(ctx context.Context) (*sessState, error) {
	select {
	case <-c.closing:
		return nil, ErrClosed
	default:
	}
	c.ensureStarted()
	for {
		st := c.current()
		switch st.phase {
		case phaseReady:
			if !st.sess.isDead() {
				return st, nil
			}
		case phaseHolding, phaseStopped:
			return st, nil
		}
		select {
		case <-st.changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closing:
			return nil, ErrClosed
		}
	}
}

// supervise owns the session for the life of the Client: it builds it,
// waits for it to fail, and rebuilds it per PROTOCOL §3.4 and §9.4, or
// stops for good. It is the only goroutine that creates or deletes
// applications.
func (c *Client) supervise() {
	defer c.wg.Done()
	var (
		d          *discovered // kept for re-creating an application on the same pool
		run        failRun     // the failover procedure under way, if any
		tooMany    int         // TooManyApplications displacements in a row
		recreating bool        // the next application replaces one the server lost
		gen        uint64
	)
	ctx := c.base
	for {
		if ctx.Err() != nil {
			return
		}
		c.publish(sessState{phase: phaseStarting, failing: run.active(), gen: gen})
		if d == nil {
			var err error
			if d, err = c.discover(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				l := c.lossOf(err)
				c.log.WarnContext(ctx, "ucwa discovery failed", "err", err, "reason", string(l.reason), "attempt", run.n+1)
				if l.act == actStop {
					c.stop(ctx, gen, "discovery: "+l.detail)
					return
				}
				if !c.hold(ctx, &run, gen, l.reason, "discovery failed: "+l.detail, l.retryAfter) {
					return
				}
				continue
			}
		}
		gen++
		sess, err := c.createSession(ctx, d, gen, recreating)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l := c.lossOf(err)
			c.log.WarnContext(ctx, "ucwa application creation failed", "err", err, "pool", d.apps.Host,
				"action", l.act.String(), "reason", string(l.reason))
			if l.act == actStop {
				c.stop(ctx, gen, "application creation on "+d.apps.Host+": "+l.detail)
				return
			}
			d = nil // start again from discovery
			if !c.hold(ctx, &run, gen, l.reason, "application creation failed: "+l.detail, l.retryAfter) {
				return
			}
			continue
		}
		if run.active() {
			c.log.InfoContext(ctx, "ucwa session recovered", "pool", sess.pool, "generation", gen,
				"failing_for", time.Since(run.since).Round(time.Millisecond).String(), "attempts", run.n)
		}
		run = failRun{}
		c.log.InfoContext(ctx, "ucwa session ready", "pool", sess.pool, "generation", gen, "recreated", recreating)
		c.publish(sessState{phase: phaseReady, sess: sess, gen: gen})

		select {
		case <-c.closing:
			c.teardown(sess)
			return
		case <-sess.done:
		}
		sess.wg.Wait()
		l := sess.failure()
		c.log.WarnContext(ctx, "ucwa session lost", "pool", sess.pool, "generation", gen,
			"action", l.act.String(), "reason", string(l.reason), "detail", l.detail)
		switch {
		case ctx.Err() != nil:
			c.teardown(sess)
			return
		case l.act == actStop:
			c.stop(ctx, gen, l.detail)
			return
		case l.act == actRecreateApp && l.subcode == "TooManyApplications":
			tooMany++
			if tooMany > 1 {
				c.stop(ctx, gen, "TooManyApplications twice: another process signs in with this account")
				return
			}
			recreating = true
			if !backoff.Sleep(ctx, c.timers.RetryMin) {
				return
			}
		case l.act == actRecreateApp && !(recreating && !sess.healthy.Load()):
			if l.subcode == "InactiveApplicationExpired" {
				c.log.ErrorContext(ctx, "ucwa application expired: the keep-alive lapsed", "pool", sess.pool)
			}
			recreating = true
			tooMany = 0
		default:
			// Failover procedure (§9.4): freeze (done: the session is dead,
			// its waiters report Uncertain), forget every URL and token,
			// pause, rediscover from the roots.
			d, recreating, tooMany = nil, false, 0
			if !c.hold(ctx, &run, gen, l.reason, l.detail, l.retryAfter) {
				return
			}
		}
	}
}

// teardown ends a live session on Close: stop the event channel, then
// DELETE the application, bounded by Close's context and the request timer.
//
// The held long poll stays open during the DELETE and ends with the
// application, so no request of ours reaches the server after it. A poll
// sent only just now gets a moment to arrive first.
func (c *Client) teardown(s *session) {
	defer s.wg.Wait()
	defer s.fail(loss{act: actStop, reason: ReasonClosed, detail: "client closed"})
	s.stopPolling.Store(true)
	if s.self == nil || s.isDead() {
		return
	}
	if since := time.Since(time.Unix(0, s.pollSentNano.Load())); since < pollSettle {
		time.Sleep(pollSettle - since)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.closeCtx), c.timers.Request)
	defer cancel()
	stopAfter := context.AfterFunc(c.closeCtx, cancel)
	defer stopAfter()
	tok, _ := s.tok.current(ctx)
	if tok == "" {
		c.log.WarnContext(ctx, "ucwa application left to expire: no valid token to delete it", "pool", s.pool)
		return
	}
	// The DELETE does not wait for a Retry-After: the application expires
	// by itself if it cannot go now.
	resp, err := c.hc.roundTrip(ctx, &request{method: http.MethodDelete, url: s.self, resource: resApplication,
		token: tok, timeout: c.timers.Request})
	switch {
	case err != nil:
		c.log.WarnContext(ctx, "delete ucwa application", "pool", s.pool, "err", err)
	case resp.status/100 != 2:
		c.log.WarnContext(ctx, "delete ucwa application", "pool", s.pool, "status", resp.status)
	default:
		c.log.InfoContext(ctx, "ucwa application deleted", "pool", s.pool)
	}
}

// pollSettle is how long a just-sent long poll is given to reach the
// server before Close deletes the application under it.
const pollSettle = 30 * time.Millisecond

// session is one application on one pool, with its token, its event
// channel and the conversations started on it. Its URLs die with it.
type session struct {
	c        *Client
	gen      uint64
	pool     string   // host of the applications URL
	apps     *url.URL // base for every relative href
	tok      *tokenSource
	recreate bool

	self, events, startMessaging *url.URL

	ctx    context.Context // cancelled when the session dies
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // the event channel goroutine

	failOnce     sync.Once
	lost         loss         // why it died; set before done is closed
	healthy      atomic.Bool  // something worked on this application
	stopPolling  atomic.Bool  // Close: issue no further long poll
	pollSentNano atomic.Int64 // when the current long poll was sent
	lastPollNano atomic.Int64 // unix nanos

	// Runs of trouble that start the failover procedure (§9.4).
	runMu       sync.Mutex
	transport   int       // transport failures in a row
	unavailable int       // 503 answers in a row, with no success between
	unavailFrom time.Time // the first of them
	// tokenFailure is the last failed token request counted above.
	tokenFailure *flightError

	disp dispatch // event correlation state
}

func (s *session) isDead() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *session) lastPoll() time.Time {
	if n := s.lastPollNano.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// loss says why a session died, or why it could not be built, and what
// the supervisor does about it.
type loss struct {
	act        action
	reason     Reason // session-caused
	subcode    string
	detail     string
	retryAfter time.Duration // the server's Retry-After on the decisive answer
}

// fail kills the session once: its context ends (the event channel and
// every request on it stop), waiters see done, the supervisor takes over.
func (s *session) fail(l loss) {
	s.failOnce.Do(func() {
		s.lost = l
		s.cancel()
		close(s.done)
	})
}

// failure returns why the session died; only valid after done is closed.
func (s *session) failure() loss { return s.lost }

// createSession creates an application on the discovered pool and starts
// its event channel (PROTOCOL §3.1, §11 steps 5-6).
func (c *Client) createSession(ctx context.Context, d *discovered, gen uint64, recreate bool) (*session, error) {
	s := &session{c: c, gen: gen, pool: d.apps.Host, apps: d.apps, tok: d.tok, recreate: recreate,
		done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.disp.init()
	body, _ := json.Marshal(map[string]string{
		"userAgent": "relay/" + c.cfg.Version, "endpointId": c.cfg.EndpointID, "culture": c.cfg.Culture,
	})
	resp, err := s.do(ctx, http.MethodPost, d.apps, resApplications, "application/json", body, flagWait)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("create application: %w", err)
	}
	var app halResource
	if err := decodeJSON(resp.body, &app); err != nil {
		s.cancel()
		return nil, fmt.Errorf("create application on %s: %w", s.pool, err)
	}
	link := func(r *halResource, rel string) *url.URL {
		if h := r.link(rel); h != "" {
			if u, err := resolve(d.apps, h); err == nil {
				return u
			}
		}
		return nil
	}
	s.self, s.events = link(&app, "self"), link(&app, "events")
	comm := app.embedded("communication")
	if comm == nil {
		if u := link(&app, "communication"); u != nil {
			if r, err := s.do(ctx, http.MethodGet, u, resApplication, "", nil, flagWait); err == nil {
				comm = &halResource{}
				if decodeJSON(r.body, comm) != nil {
					comm = nil
				}
			}
		}
	}
	s.startMessaging = link(comm, "startMessaging")
	if s.self == nil || s.events == nil || s.startMessaging == nil {
		s.cancel()
		return nil, fmt.Errorf("create application on %s: answer lacks self, events or startMessaging link", s.pool)
	}
	s.wg.Add(1)
	go s.pollEvents()
	return s, nil
}
