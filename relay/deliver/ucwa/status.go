package ucwa

import "time"

// Session phases, as Status.Phase.
const (
	// PhaseIdle: nothing started yet (no Start nor Send so far).
	PhaseIdle = "idle"
	// PhaseStarting: the first discovery and application creation, or the
	// re-creation of an application the server lost.
	PhaseStarting = "starting"
	// PhaseReady: an application and its event channel are up.
	PhaseReady = "ready"
	// PhaseThrottled: ready, but the pool asked us to wait (Retry-After)
	// or is failing and rate limited right now; sends return RetryLater.
	PhaseThrottled = "throttled"
	// PhaseFailingOver: the failover procedure (PROTOCOL §9.4) runs:
	// pausing between rebuilds, rediscovering, re-creating the application.
	PhaseFailingOver = "failing_over"
	// PhaseStopped: stopped for good; see Client.Stopped.
	PhaseStopped = "stopped"
)

// Phases lists every value of Status.Phase, for one gauge per phase.
var Phases = []string{PhaseIdle, PhaseStarting, PhaseReady, PhaseThrottled, PhaseFailingOver, PhaseStopped}

// Status is a cheap snapshot of the session for readiness checks and metrics.
type Status struct {
	// Phase is one of Phases.
	Phase string
	// Pool is the host serving the current application ("" when none).
	Pool string
	// ApplicationAlive reports whether an application is usable right now.
	ApplicationAlive bool
	// LastEventPoll is when the event channel last answered.
	LastEventPoll time.Time
	// Generation counts the application creations this client attempted.
	Generation uint64
	// Reason and Detail say why the session is failing over or stopped.
	Reason Reason
	Detail string
	// RetryAt is when the failover procedure tries again (zero unless it
	// is pausing).
	RetryAt time.Time
}

// Status returns the session's current state.
func (c *Client) Status() Status {
	c.stateMu.Lock()
	st := c.state
	c.stateMu.Unlock()
	s := Status{Phase: st.name(), Reason: st.reason, Detail: st.detail, Generation: st.gen}
	if st.phase == phaseHolding {
		s.RetryAt = st.holdUntil
	}
	if st.sess != nil {
		s.Pool = st.sess.pool
		s.ApplicationAlive = !st.sess.isDead()
		s.LastEventPoll = st.sess.lastPoll()
		switch {
		case !s.ApplicationAlive:
			s.Phase = PhaseFailingOver // lost; the supervisor is taking over
		case c.hc.gate.wait(st.sess.apps.Host, time.Now()) > 0:
			s.Phase = PhaseThrottled
		}
	}
	return s
}

// Stopped returns a channel closed when the client has stopped sending for
// good: the server refuses this client (410 UserAgentNotAllowed), the
// token endpoint refuses the account's credentials, fresh tokens were
// refused maxAuthRefusals times in a row, or another sign-in displaced the
// application twice (TooManyApplications). From then on every Send returns
// RetryLater with Session set and reason "stopped" at once; Err says why.
// The owner of the client should close it and let another instance (or a
// fixed configuration) take over. Close alone does not close the channel.
func (c *Client) Stopped() <-chan struct{} { return c.stopped }

// Err returns why the client stopped (wrapping ErrStopped), or nil while it
// has not stopped.
func (c *Client) Err() error {
	select {
	case <-c.stopped:
		return c.stopErr
	default:
		return nil
	}
}
