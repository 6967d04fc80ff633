// Package relay holds the vocabulary shared by every part of the relay:
// deliveries and their states, delivery targets, send outcomes and the
// sentinel errors callers branch on. It imports no other relay package.
package relay

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Callers test them with errors.Is; the HTTP layer maps them
// to status codes in one place.
var (
	// ErrNotFound means the thing asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid means input from outside is malformed or breaks a rule.
	ErrInvalid = errors.New("invalid input")
	// ErrConflict means the request does not fit the current state of the
	// thing it names (for example redelivering a delivery still queued).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means a dependency of ours (the database) cannot be
	// reached right now; the caller should retry later.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrInternal means relay itself failed: a bug or a state it does not
	// expect (an error the database gave that no retry will cure, a value
	// that cannot be encoded or scanned, a panic), neither bad input nor a
	// dependency that is down. The HTTP layer answers 500 without the
	// detail and logs it at error level.
	ErrInternal = errors.New("internal error")
)

// State is where a delivery stands in its life.
type State string

// Delivery states. A delivery is created pending, is sending while a worker
// holds its lease, and ends in one of the final states. Nothing is ever
// deleted, and a final delivery can be put back in the queue (redeliver).
const (
	StatePending State = "pending"
	StateSending State = "sending"
	// StateDelivered: the server confirmed delivery.
	StateDelivered State = "delivered"
	// StateDead: failed for good, or retries ran out (by count or by age).
	StateDead State = "dead"
	// StateUncertain: the server accepted the message but never confirmed
	// it, and the route's policy is not to resend (a duplicate would be
	// worse than a miss).
	StateUncertain State = "uncertain"
	// StateSuperseded: a firing notification not yet sent when its group
	// resolved; the resolved message says so instead.
	StateSuperseded State = "superseded"
)

// States lists every delivery state, in lifecycle order.
var States = []State{StatePending, StateSending, StateDelivered, StateDead, StateUncertain, StateSuperseded}

// Final reports whether a delivery in state s is no longer queued.
func (s State) Final() bool { return s != StatePending && s != StateSending }

// ParseState checks s names a delivery state.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("%w: unknown delivery state %q", ErrInvalid, s)
}

// Target is one Skype for Business conversation a message goes to: a single
// recipient, since the relay keeps one peer-to-peer conversation per person.
type Target struct {
	// To is the recipient's SIP URI, e.g. "sip:oncall@contoso.com".
	To string
	// Subject is the conversation subject shown to the recipient (optional).
	Subject string
	// Importance is "Normal", "Urgent" or "Emergency" (optional).
	Importance string
}

// OutcomeKind says what became of one attempt to send a message.
type OutcomeKind int

// Outcome kinds.
const (
	// Delivered: the server confirmed delivery of this very message.
	Delivered OutcomeKind = iota + 1
	// RetryLater: the message was not accepted; trying again later may work.
	RetryLater
	// Permanent: the message cannot be delivered as it is (bad recipient,
	// declined, policy); retrying will not help.
	Permanent
	// Uncertain: the server may have accepted the message but never
	// confirmed it (for example the pool failed over in between). The caller
	// decides whether a possible duplicate beats a possible miss.
	Uncertain
)

func (k OutcomeKind) String() string {
	switch k {
	case Delivered:
		return "delivered"
	case RetryLater:
		return "retry"
	case Permanent:
		return "permanent"
	case Uncertain:
		return "uncertain"
	default:
		return "unknown"
	}
}

// Outcome is the result of one send attempt, with what the audit trail keeps.
type Outcome struct {
	Kind OutcomeKind
	// RetryAfter is the delay the server asked for or the sender suggests
	// (RetryLater only; zero means no suggestion).
	RetryAfter time.Duration
	// Pool is the host of the pool that handled the attempt.
	Pool string
	// HTTPStatus is the status of the decisive response, 0 when none came.
	HTTPStatus int
	// Code and Subcode are the UCWA error code and subcode, when given.
	Code, Subcode string
	// Reason is a short stable word for metrics and logs ("ok", "timeout",
	// "declined", "failover", ...).
	Reason string
	// Detail is a human-readable explanation; it never holds a secret.
	Detail string
	// Session is set on a RetryLater or Uncertain outcome caused by the
	// session or the server (pool failover, throttling, network, the bot's
	// own sign-in) rather than by this message or its recipient. Such tries
	// are recorded but do not count against the message's attempt limit.
	Session bool
	// OperationID is the UCWA operationId used for this attempt.
	OperationID string
	// Latency is the time from the start of the attempt to its outcome.
	Latency time.Duration
}
