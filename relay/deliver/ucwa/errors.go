package ucwa

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay"
)

// ErrClosed is returned by Send and Start once Close has been called.
var ErrClosed = errors.New("ucwa client closed")

// Reason is a short stable word saying why an attempt ended the way it did.
// It is used as Outcome.Reason and as a metric label, so the set is small.
type Reason string

// Reasons.
const (
	ReasonOK               Reason = "ok"
	ReasonInvalid          Reason = "invalid_input"
	ReasonTimeout          Reason = "timeout"   // a request got no answer in time
	ReasonNoAnswer         Reason = "no_answer" // the recipient did not answer the invitation
	ReasonNetwork          Reason = "network"
	ReasonThrottled        Reason = "throttled"
	ReasonServer           Reason = "server_error"
	ReasonAuth             Reason = "auth"
	ReasonApplicationGone  Reason = "application_gone"
	ReasonFailover         Reason = "failover"
	ReasonConversationGone Reason = "conversation_gone"
	ReasonDeclined         Reason = "declined"
	ReasonNotFound         Reason = "not_found"
	ReasonNotAllowed       Reason = "not_allowed"
	ReasonUnavailable      Reason = "unavailable"
	ReasonMessageFailed    Reason = "message_failed"
	ReasonUnconfirmed      Reason = "unconfirmed"
	ReasonRejected         Reason = "rejected"
	ReasonTooLarge         Reason = "too_large"
	ReasonStopped          Reason = "stopped"
	ReasonClosed           Reason = "closed"
	ReasonCanceled         Reason = "canceled"
)

// action is what the client does about a failed request (PROTOCOL §8.7).
type action int

const (
	actRetry       action = iota + 1 // back off and try again later
	actReauth                        // a fresh token was refused too: counts toward failover
	actRecreateApp                   // new application on the same pool
	actFailover                      // forget everything, rediscover
	actRebuildConv                   // drop the conversation, invite again
	actPermanent                     // this request can never succeed as it is
	actStop                          // configuration or policy problem: stop the session
)

func (a action) String() string {
	switch a {
	case actRetry:
		return "retry"
	case actReauth:
		return "reauth"
	case actRecreateApp:
		return "recreate_application"
	case actFailover:
		return "failover"
	case actRebuildConv:
		return "rebuild_conversation"
	case actPermanent:
		return "permanent"
	case actStop:
		return "stop"
	default:
		return "none"
	}
}

// apiError is a failed UCWA request: an HTTP error answer or a transport
// error. It never holds a token, a password or a request body.
type apiError struct {
	Resource   string // what was asked for, e.g. "sendMessage"
	Host       string // pool host
	Status     int    // 0 for transport errors
	Code       string
	Subcode    string
	Message    string
	RetryAfter time.Duration // from Retry-After, 0 when absent
	JSON       bool          // the body was a UCWA JSON error (not a proxy page)
	Diag       string        // X-Ms-diagnostics, for logs only (never branched on)
	NotSent    bool          // transport error before the request left (dial)
	Err        error         // transport error
}

func (e *apiError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s on %s: %v", e.Resource, e.Host, e.Err)
	}
	s := fmt.Sprintf("%s on %s: http %d", e.Resource, e.Host, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Subcode != "" {
		s += "/" + e.Subcode
	}
	if e.Diag != "" {
		s += " (diagnostics: " + e.Diag + ")"
	}
	return s
}

func (e *apiError) Unwrap() error { return e.Err }

// ucwaError is the JSON error body and the event reason block (§8.1).
type ucwaError struct {
	Code    string `json:"code"`
	Subcode string `json:"subcode"`
	Message string `json:"message"`
}

// classify maps one failed request to an action and a reason, once, for the
// whole client (PROTOCOL §8.7). resource names the request so that a 403 or
// 404 can be read in context.
func classify(e *apiError) (action, Reason) {
	if e.Status == 0 {
		if e.Err != nil && (errors.Is(e.Err, errTimeout) || isTimeout(e.Err)) {
			return actRetry, ReasonTimeout
		}
		return actRetry, ReasonNetwork
	}
	conversational := e.Resource == resSendMessage || e.Resource == resMessaging ||
		e.Resource == resConversation || e.Resource == resInvitation || e.Resource == resMessage
	switch e.Status {
	case http.StatusUnauthorized:
		return actReauth, ReasonAuth // a fresh token was refused too
	case http.StatusForbidden:
		switch e.Resource {
		case resRoot, resUser, resToken, resApplications:
			return actFailover, ReasonNotAllowed
		}
		return actPermanent, ReasonNotAllowed
	case http.StatusNotFound:
		switch {
		case e.Subcode == "ApplicationNotFound":
			return actRecreateApp, ReasonApplicationGone
		case e.Subcode == "APIVersionNotSupported":
			return actPermanent, ReasonRejected
		case conversational:
			return actRebuildConv, ReasonConversationGone
		case e.Resource == resRoot || e.Resource == resUser:
			return actFailover, ReasonNotFound
		}
		return actRecreateApp, ReasonApplicationGone
	case http.StatusConflict:
		switch e.Subcode {
		case "AnotherOperationPending", "TooManyConversations", "ThreadIdAlreadyExists", "AlreadyExists", "TooManyGroups":
			return actRetry, ReasonServer
		}
		if conversational {
			return actRebuildConv, ReasonConversationGone
		}
		return actRetry, ReasonServer
	case http.StatusGone:
		switch e.Subcode {
		case "InactiveApplicationExpired", "TooManyApplications":
			return actRecreateApp, ReasonApplicationGone
		case "UserAgentNotAllowed":
			return actStop, ReasonNotAllowed
		}
		return actFailover, ReasonFailover
	case http.StatusRequestEntityTooLarge:
		return actPermanent, ReasonTooLarge
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return actRetry, ReasonThrottled
	case http.StatusBadGateway:
		return actFailover, ReasonFailover
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return actRetry, ReasonTimeout
	}
	switch {
	case e.Status >= 300 && e.Status < 400:
		return actFailover, ReasonFailover // a host change outside discovery
	case e.Status >= 500:
		return actRetry, ReasonServer
	}
	return actPermanent, ReasonRejected // 400, 405, 412, 415, 428 and the rest: a bug
}

// classifyInvitation maps a failed messagingInvitation completion (§5.2,
// §8.7) to an outcome kind. Unknown pairs fall back on the code.
func classifyInvitation(r ucwaError) (relay.OutcomeKind, Reason) {
	switch r.Subcode {
	case "Declined":
		return relay.Permanent, ReasonDeclined
	case "DestinationNotFound":
		return relay.Permanent, ReasonNotFound
	case "NotAllowed", "FederationRequired":
		return relay.Permanent, ReasonNotAllowed
	case "Timeout", "Missed":
		return relay.RetryLater, ReasonNoAnswer
	case "TemporarilyUnavailable", "Unreachable", "Busy", "DoNotDisturb":
		return relay.RetryLater, ReasonUnavailable
	}
	switch r.Code {
	case "NotFound":
		return relay.Permanent, ReasonNotFound
	case "Forbidden":
		return relay.Permanent, ReasonNotAllowed
	case "Timeout":
		return relay.RetryLater, ReasonNoAnswer
	}
	return relay.RetryLater, ReasonUnavailable
}

var errTimeout = errors.New("request timeout")

// SessionCaused reports whether an outcome with this reason was caused by
// the session or the server (failover, throttling, network, the bot's own
// sign-in) rather than by the message or its recipient. Send sets
// relay.Outcome.Session from it.
func (r Reason) SessionCaused() bool {
	switch r {
	case ReasonTimeout, ReasonNetwork, ReasonThrottled, ReasonServer, ReasonAuth, ReasonApplicationGone,
		ReasonFailover, ReasonConversationGone, ReasonStopped, ReasonClosed, ReasonCanceled:
		return true
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isNotSent reports whether a transport error happened before any byte of
// the request could reach the server (the connection was never made).
func isNotSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// parseRetryAfter reads a Retry-After value: delta seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return max(lo, min(d, hi))
}

// step is the result of one stage of a send: either go on, or an outcome,
// possibly worth another attempt on a fresh session or conversation.
type step struct {
	out   relay.Outcome
	again bool
}

func failed(kind relay.OutcomeKind, reason Reason, detail string) *step {
	return &step{out: relay.Outcome{Kind: kind, Reason: string(reason), Detail: detail}}
}

// errorStep turns a failed request into a step per §8.7. Actions that the
// session already took (re-create, failover) make it worth another attempt
// or a later retry.
func (s *session) errorStep(err error) *step {
	var ae *apiError
	if !errors.As(err, &ae) {
		return failed(relay.RetryLater, ReasonNetwork, err.Error())
	}
	act, reason := classify(ae)
	if errors.Is(ae.Err, errThrottled) {
		act, reason = actRetry, ReasonThrottled
	}
	st := failed(relay.RetryLater, reason, ae.Error())
	st.out.HTTPStatus, st.out.Code, st.out.Subcode = ae.Status, ae.Code, ae.Subcode
	switch act {
	case actRetry, actReauth:
		st.out.RetryAfter = ae.RetryAfter
		if st.out.RetryAfter == 0 {
			st.out.RetryAfter = s.c.timers.RetryMin
		}
	case actRecreateApp, actRebuildConv:
		st.again = true
	case actFailover:
		st.out.RetryAfter = s.c.timers.FailoverMin
	case actPermanent, actStop:
		st.out.Kind = relay.Permanent
	}
	return st
}

// deadStep is the outcome for work cut short by the session's death.
// accepted says the server may hold the message: then it is Uncertain.
func (s *session) deadStep(accepted bool) *step {
	act, reason, _, detail := s.failure()
	if accepted {
		return failed(relay.Uncertain, reason, "session lost before confirmation: "+detail)
	}
	st := failed(relay.RetryLater, reason, "session lost: "+detail)
	switch act {
	case actRecreateApp:
		st.again = true
	case actFailover:
		st.out.RetryAfter = s.c.timers.FailoverMin
	case actStop:
		if reason == ReasonClosed {
			st.out.Reason = string(ReasonClosed)
		}
	}
	return st
}
