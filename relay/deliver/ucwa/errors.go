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

// ErrStopped is wrapped by Client.Err once the client stopped sending for
// good: the server refuses this client or its account (UserAgentNotAllowed,
// credentials refused, displaced twice by another sign-in).
var ErrStopped = errors.New("ucwa client stopped")

// Errors that refuse a request before it is sent.
var (
	// errHostNotAllowed: a link, redirect or token endpoint leads to a
	// host outside AllowedHosts.
	errHostNotAllowed = errors.New("host is not in AllowedHosts")
	// errInsecureLink: a token or credentials would travel over plain
	// http to a host that is not loopback.
	errInsecureLink = errors.New("plain http to a host that is not loopback")
	// errThrottled: the host asked us to wait (Retry-After) or is failing
	// and rate limited; RetryAfter says how long is left.
	errThrottled = errors.New("throttled: waiting before asking this host again")
	// errTokenRefused: a token fresh from the token endpoint was refused.
	errTokenRefused = errors.New("fresh token refused")
	errTimeout      = errors.New("request timeout")
	// errBodyTooLarge: an answer's body was over the limit, so it was not
	// read; the answer counts as lost.
	errBodyTooLarge = errors.New("response body too large")
)

// action is what the client does about a failed request (PROTOCOL §8.7).
type action int

const (
	actRetry       action = iota + 1 // back off and try again later
	actReauth                        // a fresh token was refused too
	actRecreateApp                   // new application on the same pool
	actFailover                      // forget everything, rediscover
	actRebuildConv                   // drop the conversation, invite again
	actPermanent                     // this message can never be sent as it is
	actStop                          // the server refuses this client or account: stop for good
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

// apiError is a failed UCWA request: an HTTP error answer, a transport
// error, or a request refused before it left. It never holds a token, a
// password or a request body.
type apiError struct {
	Resource   string // what was asked for, e.g. "sendMessage"
	Host       string // pool host
	Status     int    // 0 for transport errors and refusals
	Code       string
	Subcode    string
	Message    string
	RetryAfter time.Duration // from Retry-After, or our own wait; 0 when none
	JSON       bool          // the body was a UCWA JSON error (not a proxy page)
	Diag       string        // X-Ms-diagnostics, for logs only (never branched on)
	NotSent    bool          // nothing reached the server (refused, throttled, dial error)
	// TokenRefused: the request was replayed with a fresh token and that
	// was refused as well (401, or 403 InvalidToken).
	TokenRefused bool
	Err          error // transport error or refusal
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
	if e.TokenRefused {
		s += " (fresh token refused)"
	}
	if e.Diag != "" {
		s += " (diagnostics: " + e.Diag + ")"
	}
	return s
}

func (e *apiError) Unwrap() error { return e.Err }

// tokenError is the token endpoint's refusal of the password grant
// (PROTOCOL §2.2).
type tokenError struct {
	host   string
	status int
	code   string // OAuth error code, when it is a plain word
}

func (e *tokenError) Error() string {
	s := fmt.Sprintf("request token on %s: http %d", e.host, e.status)
	if e.code != "" {
		s += " " + e.code
	}
	return s
}

// refused reports whether the endpoint refused the account's credentials
// (401, or 400 invalid_grant and the like) rather than being in passing
// trouble: asking again would only risk locking the account.
func (e *tokenError) refused() bool {
	switch {
	case e.status == http.StatusUnauthorized:
		return true
	case e.status == http.StatusBadRequest:
		return e.code != "server_error" && e.code != "temporarily_unavailable"
	}
	return false
}

// credentialsRefused reports whether err holds a token endpoint's refusal
// of the credentials.
func credentialsRefused(err error) bool {
	var te *tokenError
	return errors.As(err, &te) && te.refused()
}

// ucwaError is the JSON error body and the event reason block (§8.1).
type ucwaError struct {
	Code    string `json:"code"`
	Subcode string `json:"subcode"`
	Message string `json:"message"`
}

// classify maps one failed request to an action and a reason, once, for the
// whole client (PROTOCOL §8.7). The resource tells the message request
// itself (startMessaging, sendMessage) and the target's conversation apart
// from the session's own requests: only the former can be the message's
// fault. Every action but actPermanent comes with a session-caused reason.
func classify(e *apiError) (action, Reason) {
	var (
		te    *tokenError
		inner *apiError
	)
	switch {
	case errors.Is(e.Err, errHostNotAllowed), errors.Is(e.Err, errInsecureLink):
		return actFailover, ReasonHostNotAllowed
	case errors.Is(e.Err, errThrottled):
		return actRetry, ReasonThrottled
	case errors.As(e.Err, &te):
		switch {
		case te.refused():
			return actStop, ReasonStopped
		case te.status == http.StatusForbidden:
			return actFailover, ReasonAuth
		}
		return actRetry, ReasonAuth
	case e.TokenRefused:
		return actReauth, ReasonAuth
	case e.Status == 0 && errors.As(e.Err, &inner):
		return classify(inner) // a request this one needed failed (the token POST)
	case e.Status == 0:
		if e.Err != nil && (errors.Is(e.Err, errTimeout) || isTimeout(e.Err)) {
			return actRetry, ReasonTimeout
		}
		return actRetry, ReasonNetwork
	}
	message := e.Resource == resStartMessaging || e.Resource == resSendMessage
	conversational := e.Resource == resSendMessage || e.Resource == resMessaging ||
		e.Resource == resConversation || e.Resource == resInvitation || e.Resource == resMessage
	switch e.Status {
	case http.StatusUnauthorized:
		return actReauth, ReasonAuth
	case http.StatusForbidden:
		if message || conversational {
			return actPermanent, ReasonNotAllowed // the target may not be messaged
		}
		return actFailover, ReasonAuth // discovery, token, applications, events (§1.4)
	case http.StatusNotFound:
		switch {
		case e.Subcode == "ApplicationNotFound":
			return actRecreateApp, ReasonApplicationGone
		case e.Subcode == "APIVersionNotSupported":
			return actFailover, ReasonServer // we pin no version: a server we should not use
		case conversational:
			return actRebuildConv, ReasonConversationGone
		case e.Resource == resRoot || e.Resource == resUser:
			return actFailover, ReasonFailover
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
			return actStop, ReasonStopped
		}
		return actFailover, ReasonFailover
	case http.StatusRequestEntityTooLarge:
		if message {
			return actPermanent, ReasonTooLarge
		}
		return actRetry, ReasonProtocol
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
	case message:
		return actPermanent, ReasonRejected // 400, 405, 412, 415, 428 and the rest: a bug in this request
	}
	return actRetry, ReasonProtocol // the same on a request of the session: not the message's fault
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
// (on the new session, if it is built soon: see rebuildWait) or a later
// retry; only actPermanent blames the message.
func (s *session) errorStep(err error) *step {
	var ae *apiError
	if !errors.As(err, &ae) {
		return failed(relay.RetryLater, ReasonNetwork, err.Error())
	}
	act, reason := classify(ae)
	st := failed(relay.RetryLater, reason, ae.Error())
	st.out.HTTPStatus, st.out.Code, st.out.Subcode = ae.Status, ae.Code, ae.Subcode
	st.out.RetryAfter = ae.RetryAfter
	t := s.c.timers
	switch act {
	case actRetry:
		if st.out.RetryAfter == 0 {
			st.out.RetryAfter = t.RetryMin
		}
	case actReauth:
		st.out.RetryAfter = max(ae.RetryAfter, t.FailoverMin)
	case actFailover:
		st.out.RetryAfter = max(ae.RetryAfter, t.FailoverMin)
		st.again = true
	case actRecreateApp, actRebuildConv:
		st.again = true
	case actStop:
		st.out.RetryAfter = t.FailoverMax
	case actPermanent:
		st.out.Kind, st.out.RetryAfter = relay.Permanent, 0
	}
	return st
}

// deadStep is the outcome for work cut short by the session's death.
// accepted says the server may hold the message: then it is Uncertain.
func (s *session) deadStep(accepted bool) *step {
	l := s.failure()
	if accepted {
		st := failed(relay.Uncertain, l.reason, "session lost before confirmation: "+l.detail)
		st.out.RetryAfter = l.retryAfter
		return st
	}
	st := failed(relay.RetryLater, l.reason, "session lost: "+l.detail)
	switch l.act {
	case actRecreateApp:
		st.again = true
	case actStop:
		if l.reason != ReasonClosed {
			st.out.RetryAfter = s.c.timers.FailoverMax
		}
	default: // the failover procedure
		st.out.RetryAfter = max(l.retryAfter, s.c.timers.FailoverMin)
		st.again = true
	}
	return st
}
