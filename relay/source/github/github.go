// Package github decodes GitHub webhook deliveries for relay: workflow_run
// and check_suite events, and ping.
//
// Every delivery must be signed: GitHub sends X-Hub-Signature-256, the hex
// HMAC-SHA256 of the raw body keyed with the webhook's secret, and Decode
// checks it in constant time before it reads anything else. A route without
// a secret accepts nothing.
//
// # Replays
//
// The signature covers the body only; it has no timestamp or nonce, so a
// captured delivery stays valid for ever. Relay's protection against
// replays is the idempotency key: X-GitHub-Delivery, the GUID GitHub gives
// each delivery and keeps when a delivery is redelivered. A replayed or
// redelivered request gets the same key and is dropped by the store's
// dedupe for as long as the first one is kept. A different body under a
// GUID already seen (which only a holder of the secret can sign) is
// dropped as well: the key is the GUID alone, by design, since GitHub never
// reuses a GUID for other content. Without the header the key falls back
// to a hash of the body.
//
// # Events
//
//	ping          Event.Ping; answer 200.
//	workflow_run  rendered when action is "completed"; "requested" and
//	              "in_progress" are ignored (one message per finished run).
//	check_suite   rendered when action is "completed"; "requested" and
//	              "rerequested" are ignored.
//	anything else ignored (Kind "other").
//
// GitHub Actions sends both a workflow_run and a check_suite for each run;
// subscribe the webhook to one of them.
//
// # Labels
//
// For routing rules, events carry the labels source ("github"), event,
// repository ("org/repo"), name (workflow or app), branch, status,
// conclusion, actor and trigger (workflow_run's event: push, pull_request,
// schedule, ...).
package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/source"
)

// Header names GitHub uses.
const (
	HeaderSignature = "X-Hub-Signature-256"
	HeaderEvent     = "X-GitHub-Event"
	HeaderDelivery  = "X-GitHub-Delivery"
)

// Data is what the GitHub templates see as dot.
type Data struct {
	// Route is the relay route the event came in on (see SetRoute).
	Route string
	// Event is "workflow_run" or "check_suite".
	Event string
	// Action is GitHub's action, "completed" for rendered events.
	Action string
	// Repository is "owner/name"; RepositoryURL its page.
	Repository    string
	RepositoryURL string
	// Name is the workflow's name (workflow_run) or the app's name
	// (check_suite, e.g. "GitHub Actions").
	Name string
	// Title is the run's display title, else the head commit's first line.
	Title string
	// Branch is the head branch; empty for a tag or detached head.
	Branch string
	// SHA is the head commit; ShortSHA its first 7 characters.
	SHA      string
	ShortSHA string
	// Status is GitHub's status ("completed").
	Status string
	// Conclusion is GitHub's conclusion: success, failure, cancelled,
	// timed_out, action_required, neutral, skipped, stale, startup_failure.
	Conclusion string
	// Verdict is Conclusion as a short upper-case word for titles: PASSED,
	// FAILED, CANCELLED, TIMED OUT, ACTION REQUIRED, NEUTRAL, SKIPPED,
	// STALE; or the upper-cased status when there is no conclusion.
	Verdict string
	// Actor is the login of who triggered the run (the sender for
	// check_suite).
	Actor string
	// URL is the run's page (workflow_run) or the commit's checks page
	// (check_suite).
	URL string
	// RunID, RunNumber and RunAttempt identify a workflow run ("#123",
	// attempt 2); zero for check_suite, which has only RunID (the suite id).
	RunID      int64
	RunNumber  int64
	RunAttempt int64
	// Trigger is what started a workflow run: push, pull_request,
	// schedule, workflow_dispatch, ...
	Trigger string
	// StartedAt and UpdatedAt are the run's start and last update (its end,
	// for a completed run); zero when GitHub did not send them.
	StartedAt time.Time
	UpdatedAt time.Time
	// Duration is UpdatedAt - StartedAt for a completed run, else 0.
	Duration time.Duration

	// raw is the Data a copy made by Clean was made from.
	raw *Data
}

// SetRoute sets the route name templates read as .Route.
func (d *Data) SetRoute(name string) { d.Route = name }

// Clean returns the copy of d that templates see: the URLs cleaned as
// links (clean.URL), every other string from GitHub as one line
// (clean.Line). Route, from the configuration, is kept. Raw on the copy
// returns d.
func (d *Data) Clean() any {
	c := *d
	c.raw = d
	for _, s := range []*string{&c.Event, &c.Action, &c.Repository, &c.Name, &c.Title, &c.Branch,
		&c.SHA, &c.ShortSHA, &c.Status, &c.Conclusion, &c.Verdict, &c.Actor, &c.Trigger} {
		*s = clean.Line(*s)
	}
	c.RepositoryURL = clean.URL(d.RepositoryURL)
	c.URL = clean.URL(d.URL)
	return &c
}

// Raw returns the data as GitHub sent it: for a copy made by Clean the
// original, else d. The template function raw calls it.
func (d *Data) Raw() any {
	if d.raw != nil {
		return d.raw
	}
	return d
}

// Decode checks and decodes one GitHub webhook delivery: h are the request
// headers, body the raw body, secret the webhook secret of the route.
// Errors wrap source.ErrUnauthorized (no secret configured; signature
// missing, malformed or wrong) or source.ErrMalformed.
func Decode(h http.Header, body []byte, secret string) (*source.Event, error) {
	if err := source.CheckBody(body); err != nil {
		return nil, fmt.Errorf("decode github webhook: %w", err)
	}
	if err := verify(h.Get(HeaderSignature), body, secret); err != nil {
		return nil, fmt.Errorf("decode github webhook: %w", err)
	}
	event := h.Get(HeaderEvent)
	if event == "" {
		return nil, fmt.Errorf("decode github webhook: %w: missing %s header", source.ErrMalformed, HeaderEvent)
	}
	key, err := idempotencyKey(h, body)
	if err != nil {
		return nil, fmt.Errorf("decode github webhook: %w", err)
	}
	var ev *source.Event
	switch event {
	case "ping":
		ev = &source.Event{Kind: "ping", Ping: true, Summary: "github ping"}
	case "workflow_run":
		ev, err = decodeWorkflowRun(body)
	case "check_suite":
		ev, err = decodeCheckSuite(body)
	default:
		ev = &source.Event{Kind: "other", Ignored: true, IgnoreReason: "github event " + quoteHeader(event) + " is not rendered"}
	}
	if err != nil {
		return nil, fmt.Errorf("decode github %s: %w", event, err)
	}
	if !ev.Ignored && !ev.Ping {
		ev.IdempotencyKey = key
	}
	return ev, nil
}

// verify checks header, "sha256=" and the hex HMAC-SHA256 of body keyed
// with secret, in constant time. Its errors say what is wrong without
// showing the signature or the secret.
func verify(header string, body []byte, secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: the route has no secret configured", source.ErrUnauthorized)
	}
	if header == "" {
		return fmt.Errorf("%w: missing %s header", source.ErrUnauthorized, HeaderSignature)
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return fmt.Errorf("%w: %s does not start with sha256=", source.ErrUnauthorized, HeaderSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s is not %d hex-encoded bytes", source.ErrUnauthorized, HeaderSignature, sha256.Size)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: %s does not match the body", source.ErrUnauthorized, HeaderSignature)
	}
	return nil
}

// idempotencyKey is "github/" and the delivery GUID, or a hash of the
// body when GitHub did not send one.
func idempotencyKey(h http.Header, body []byte) (string, error) {
	id := h.Get(HeaderDelivery)
	if id == "" {
		return "github/" + source.HashKey(body), nil
	}
	if err := source.CheckKey(HeaderDelivery, id); err != nil {
		return "", err
	}
	return "github/" + id, nil
}

// quoteHeader quotes an untrusted header value for a message, cut short.
func quoteHeader(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.QuoteToASCII(s)
}

// verdict turns a conclusion (else a status) into a title word.
func verdict(conclusion, status string) string {
	switch conclusion {
	case "success":
		return "PASSED"
	case "failure", "startup_failure":
		return "FAILED"
	case "timed_out":
		return "TIMED OUT"
	case "action_required":
		return "ACTION REQUIRED"
	case "":
		return strings.ToUpper(strings.ReplaceAll(status, "_", " "))
	default:
		return strings.ToUpper(strings.ReplaceAll(conclusion, "_", " "))
	}
}

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// labels returns the routing labels of d.
func (d *Data) labels() map[string]string {
	return map[string]string{
		"source":     "github",
		"event":      d.Event,
		"repository": d.Repository,
		"name":       d.Name,
		"branch":     d.Branch,
		"status":     d.Status,
		"conclusion": d.Conclusion,
		"actor":      d.Actor,
		"trigger":    d.Trigger,
	}
}

func (d *Data) summary() string {
	s := fmt.Sprintf("github %s %s %q", d.Event, d.Repository, d.Name)
	if d.RunNumber > 0 {
		s += fmt.Sprintf(" #%d", d.RunNumber)
	}
	return s + fmt.Sprintf(" %s on %q", d.Verdict, d.Branch)
}
