package ucwa

// Reason is a short stable word saying why an attempt ended the way it did.
// It is used as Outcome.Reason and as a metric label, so the set is small.
type Reason string

// Reasons. Whether each is caused by the session or by the message is
// decided in one place, the reasons table below.
const (
	ReasonOK      Reason = "ok"
	ReasonInvalid Reason = "invalid_input" // Send's arguments are unusable

	// Caused by the session, the server, its pool or links, or the bot's
	// own sign-in.
	ReasonTimeout          Reason = "timeout" // a request got no answer in time
	ReasonNetwork          Reason = "network"
	ReasonThrottled        Reason = "throttled"      // 429, 503, or our own wait for a Retry-After
	ReasonServer           Reason = "server_error"   // 5xx, 409 busy
	ReasonProtocol         Reason = "protocol_error" // 4xx to a request of the session itself (a bug on one side)
	ReasonAuth             Reason = "auth"           // token refused, token endpoint in trouble, 403 on sign-in
	ReasonApplicationGone  Reason = "application_gone"
	ReasonFailover         Reason = "failover"
	ReasonHostNotAllowed   Reason = "host_not_allowed" // a link outside AllowedHosts, or plain http off loopback
	ReasonConversationGone Reason = "conversation_gone"
	ReasonStopped          Reason = "stopped" // the client stopped for good; see Client.Err
	ReasonClosed           Reason = "closed"
	ReasonCanceled         Reason = "canceled"

	// Caused by the message or its recipient.
	ReasonNoAnswer      Reason = "no_answer" // the recipient did not answer the invitation
	ReasonDeclined      Reason = "declined"
	ReasonNotFound      Reason = "not_found"
	ReasonNotAllowed    Reason = "not_allowed" // the recipient may not be messaged (403, NotAllowed, FederationRequired)
	ReasonUnavailable   Reason = "unavailable" // the recipient is offline, busy, ...
	ReasonMessageFailed Reason = "message_failed"
	ReasonUnconfirmed   Reason = "unconfirmed"
	ReasonRejected      Reason = "rejected" // the message request itself was refused as malformed
	ReasonTooLarge      Reason = "too_large"
)

// reasons is the one list of reasons and of who caused them. A RetryLater
// outcome whose reason is session-caused does not count against the
// message (relay.Outcome.Session); everything about the server, the pool,
// its links and the bot's own sign-in is session-caused, only what is
// about the message or its recipient is not.
var reasons = [...]struct {
	r       Reason
	session bool
}{
	{ReasonOK, false},
	{ReasonInvalid, false},
	{ReasonTimeout, true},
	{ReasonNetwork, true},
	{ReasonThrottled, true},
	{ReasonServer, true},
	{ReasonProtocol, true},
	{ReasonAuth, true},
	{ReasonApplicationGone, true},
	{ReasonFailover, true},
	{ReasonHostNotAllowed, true},
	{ReasonConversationGone, true},
	{ReasonStopped, true},
	{ReasonClosed, true},
	{ReasonCanceled, true},
	{ReasonNoAnswer, false},
	{ReasonDeclined, false},
	{ReasonNotFound, false},
	{ReasonNotAllowed, false},
	{ReasonUnavailable, false},
	{ReasonMessageFailed, false},
	{ReasonUnconfirmed, false},
	{ReasonRejected, false},
	{ReasonTooLarge, false},
}

// Reasons lists every reason, for metric labels created up front.
var Reasons = func() []Reason {
	out := make([]Reason, len(reasons))
	for i, e := range reasons {
		out[i] = e.r
	}
	return out
}()

// SessionCaused reports whether an outcome with this reason was caused by
// the session, the server, its pool or links, or the bot's own sign-in
// rather than by the message or its recipient. Send sets
// relay.Outcome.Session from it for RetryLater outcomes; it is the only
// place that decides.
func (r Reason) SessionCaused() bool {
	for _, e := range reasons {
		if e.r == r {
			return e.session
		}
	}
	return false
}
