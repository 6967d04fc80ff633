// Package source holds what relay's webhook decoders for CI systems and
// arbitrary JSON (the subpackages github, gitlab and generic) have in
// common: the decoded [Event] and the errors that decide the HTTP answer.
//
// A decoder checks the sender (signature or token), reads the event type,
// and either returns an Event to render and store, an Event marked
// Ignored or Ping (answer 202 or 200 and store nothing), or an error:
//
//	error                            HTTP status  retry by sender
//	ErrUnauthorized                  401          no (fix the secret)
//	ErrMalformed (is relay.ErrInvalid) 400        no
//	Event.Ignored                    202 "ignored" no
//	Event.Ping                       200          no
//
// [HTTPStatus] is that mapping for errors. Decoders never put a secret,
// token or signature into an error or the Event.
package source

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/skype-relay/relay/relay"
)

// Sentinel errors of every decoder.
var (
	// ErrUnauthorized means the request's signature or token is missing,
	// malformed or wrong, or the route has no secret to check it with.
	// It deliberately does not wrap relay.ErrInvalid: it maps to 401, not
	// 400.
	ErrUnauthorized = errors.New("unauthorized webhook")
	// ErrMalformed means the request is authentic (where that is checked)
	// but its body or headers cannot be used. It wraps relay.ErrInvalid,
	// so the HTTP layer answers 400.
	ErrMalformed = fmt.Errorf("malformed webhook: %w", relay.ErrInvalid)
)

// HTTPStatus returns the status code for an error of a decoder: 401 for
// ErrUnauthorized, 400 for anything wrapping relay.ErrInvalid (including
// ErrMalformed), 500 otherwise. For a nil error it returns 200; an Ignored
// event should be answered 202 by the caller.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, relay.ErrInvalid):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// Event is one decoded webhook request.
type Event struct {
	// Kind names the event for logs and metrics, from a small fixed set
	// per source ("workflow_run", "check_suite", "pipeline", "job",
	// "generic", "ping"), or "other" for an ignored event type, so it is
	// safe as a metric label. The sender's own event name is in
	// IgnoreReason then.
	Kind string
	// Ignored is true for a valid request relay has nothing to say about
	// (an event type it does not render, a run still in progress). The
	// caller answers 202 with "ignored" so the sender does not retry,
	// stores nothing, and counts it.
	Ignored bool
	// IgnoreReason says why, for the response body and logs.
	IgnoreReason string
	// Ping is true for a sender's connectivity check (GitHub's ping
	// event): answer 200, store nothing.
	Ping bool
	// IdempotencyKey identifies the delivery: retries and redeliveries of
	// the same delivery give the same key, so storing under (route, key)
	// with insert-or-ignore makes them no-ops. It is prefixed with the
	// source ("github/", "gitlab/", "generic/"), at most 300 bytes, and
	// printable ASCII. Empty for ignored and ping events.
	IdempotencyKey string
	// Data is what the template sees as dot: a *github.Data, *gitlab.Data
	// or *generic.Data. Set its route with SetRoute before rendering. Nil
	// for ignored and ping events.
	Data any
	// Labels describe the event for routing rules (relay/match), like an
	// alert's labels: for example repository, branch, conclusion. Each
	// subpackage documents its labels. Nil for ignored and ping events.
	Labels map[string]string
	// Summary is one line about the event for logs; it holds no secret.
	Summary string
}

// RouteSetter is implemented by the Data of every source: the route name
// the template reads as .Route.
type RouteSetter interface {
	SetRoute(name string)
}

// SetRoute tells the event's Data the route it arrived on, if the Data
// has a route.
func (e *Event) SetRoute(name string) {
	if rs, ok := e.Data.(RouteSetter); ok {
		rs.SetRoute(name)
	}
}

// MaxBodyBytes caps the request body a decoder accepts. GitHub and GitLab
// events that relay renders are a few tens of kilobytes.
const MaxBodyBytes = 1 << 20

// MaxKeyBytes caps an idempotency key taken from a request header.
const MaxKeyBytes = 255

// CheckKey checks a delivery identifier taken from header name: 1 to
// MaxKeyBytes bytes of printable ASCII. Errors wrap ErrMalformed.
func CheckKey(name, v string) error {
	if v == "" {
		return fmt.Errorf("%w: header %s is empty", ErrMalformed, name)
	}
	if len(v) > MaxKeyBytes {
		return fmt.Errorf("%w: header %s is %d bytes long, at most %d accepted", ErrMalformed, name, len(v), MaxKeyBytes)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return fmt.Errorf("%w: header %s holds a byte that is not printable ASCII at offset %d", ErrMalformed, name, i)
		}
	}
	return nil
}

// HashKey returns "sha256:" and the hex SHA-256 of b, for idempotency keys
// derived from content.
func HashKey(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckBody rejects an empty body or one over MaxBodyBytes.
func CheckBody(body []byte) error {
	switch {
	case len(body) == 0:
		return fmt.Errorf("%w: empty body", ErrMalformed)
	case len(body) > MaxBodyBytes:
		return fmt.Errorf("%w: body is %d bytes long, at most %d accepted", ErrMalformed, len(body), MaxBodyBytes)
	}
	return nil
}
