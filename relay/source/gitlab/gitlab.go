// Package gitlab decodes GitLab webhook requests for relay: pipeline and
// job events.
//
// GitLab sends the secret token configured on the webhook verbatim in
// X-Gitlab-Token. Decode compares it with the route's token in constant
// time, after hashing both so that not even their lengths leak through
// timing. A route without a token accepts nothing.
//
// # Events
//
//	Pipeline Hook  rendered when the pipeline finished: status success,
//	               failed, canceled or skipped; other statuses (created,
//	               pending, running, manual, ...) are ignored.
//	Job Hook       rendered when the job finished: success, failed or
//	               canceled; others are ignored.
//	anything else  ignored (Kind "other").
//
// # Idempotency
//
// The key is the Idempotency-Key header (sent by GitLab 17.4 and later, the
// same on every retry of a request) or else a hash of the event type, the
// pipeline or job id, its status and finish time. X-Gitlab-Event-UUID is
// not used: GitLab gives hooks fired by one request or job the same one. A plain token, like GitHub's
// signature, carries no timestamp: a replayed request is dropped only by
// this key.
//
// # Labels
//
// For routing rules, events carry the labels source ("gitlab"), event
// ("pipeline" or "job"), project ("group/project"), ref, status, user
// (username) and trigger (the pipeline source: push, merge_request_event,
// schedule, ...); job events add stage, job and allow_failure ("true" or
// "false").
package gitlab

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/source"
)

// Header names GitLab uses.
const (
	HeaderToken          = "X-Gitlab-Token"
	HeaderEvent          = "X-Gitlab-Event"
	HeaderEventUUID      = "X-Gitlab-Event-UUID"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Data is what the GitLab templates see as dot.
type Data struct {
	// Route is the relay route the event came in on (see SetRoute).
	Route string
	// Event is "pipeline" or "job".
	Event string
	// Project is "group/project"; ProjectURL its page.
	Project    string
	ProjectURL string
	// Ref is the branch or tag; Tag says which.
	Ref string
	Tag bool
	// SHA is the commit; ShortSHA its first 8 characters, as GitLab shows.
	SHA      string
	ShortSHA string
	// Title is the commit's first line (the pipeline's name if it has one).
	Title string
	// Status is GitLab's status of the pipeline or job: success, failed,
	// canceled, skipped.
	Status string
	// Verdict is Status as a title word: PASSED, FAILED, CANCELED, SKIPPED.
	Verdict string
	// Trigger is the pipeline's source: push, merge_request_event,
	// schedule, web, api, trigger, ... (pipeline events only).
	Trigger string
	// PipelineID is the pipeline's global id, PipelineIID its number
	// within the project (pipeline events only), PipelineURL its page.
	PipelineID  int64
	PipelineIID int64
	PipelineURL string
	// Job is the job of a job event; nil for pipeline events.
	Job *Job
	// FailedJobs are the pipeline's failed jobs, in GitLab's order (pipeline
	// events only); those allowed to fail are marked.
	FailedJobs []Job
	// User is the username of who triggered it, UserName the display name.
	User     string
	UserName string
	// Duration is how long it ran; 0 when GitLab did not say.
	Duration time.Duration
	// CreatedAt and FinishedAt are zero when GitLab did not send them.
	CreatedAt  time.Time
	FinishedAt time.Time

	// raw is the Data a copy made by Clean was made from.
	raw *Data
}

// Job is one CI job.
type Job struct {
	ID            int64
	Name          string
	Stage         string
	Status        string
	FailureReason string
	AllowFailure  bool
	URL           string
}

// SetRoute sets the route name templates read as .Route.
func (d *Data) SetRoute(name string) { d.Route = name }

// Clean returns the copy of d that templates see: the URLs cleaned as
// links (clean.URL), every other string from GitLab, the jobs' included,
// as one line (clean.Line). Route, from the configuration, is kept. Raw on
// the copy returns d.
func (d *Data) Clean() any {
	c := *d
	c.raw = d
	for _, s := range []*string{&c.Event, &c.Project, &c.Ref, &c.SHA, &c.ShortSHA, &c.Title,
		&c.Status, &c.Verdict, &c.Trigger, &c.User, &c.UserName} {
		*s = clean.Line(*s)
	}
	c.ProjectURL = clean.URL(d.ProjectURL)
	c.PipelineURL = clean.URL(d.PipelineURL)
	if d.Job != nil {
		j := d.Job.clean()
		c.Job = &j
	}
	if d.FailedJobs != nil {
		c.FailedJobs = make([]Job, len(d.FailedJobs))
		for i, j := range d.FailedJobs {
			c.FailedJobs[i] = j.clean()
		}
	}
	return &c
}

// Raw returns the data as GitLab sent it: for a copy made by Clean the
// original, else d. The template function raw calls it.
func (d *Data) Raw() any {
	if d.raw != nil {
		return d.raw
	}
	return d
}

func (j Job) clean() Job {
	for _, s := range []*string{&j.Name, &j.Stage, &j.Status, &j.FailureReason} {
		*s = clean.Line(*s)
	}
	j.URL = clean.URL(j.URL)
	return j
}

// Decode checks and decodes one GitLab webhook request: h are the request
// headers, body the raw body, token the secret token of the route. Errors
// wrap source.ErrUnauthorized (no token configured; token missing or
// wrong) or source.ErrMalformed.
func Decode(h http.Header, body []byte, token string) (*source.Event, error) {
	if err := verify(h.Get(HeaderToken), token); err != nil {
		return nil, fmt.Errorf("decode gitlab webhook: %w", err)
	}
	if err := source.CheckBody(body); err != nil {
		return nil, fmt.Errorf("decode gitlab webhook: %w", err)
	}
	event := h.Get(HeaderEvent)
	if event == "" {
		return nil, fmt.Errorf("decode gitlab webhook: %w: missing %s header", source.ErrMalformed, HeaderEvent)
	}
	var (
		ev  *source.Event
		err error
	)
	switch event {
	case "Pipeline Hook":
		ev, err = decodePipeline(body)
	case "Job Hook":
		ev, err = decodeJob(body)
	default:
		ev = &source.Event{Kind: "other", Ignored: true, IgnoreReason: "gitlab event " + quote(event) + " is not rendered"}
	}
	if err != nil {
		return nil, fmt.Errorf("decode gitlab %s: %w", strings.ToLower(event), err)
	}
	if ev.Ignored {
		return ev, nil
	}
	if ev.IdempotencyKey, err = idempotencyKey(h, ev.Data.(*Data)); err != nil {
		return nil, fmt.Errorf("decode gitlab webhook: %w", err)
	}
	return ev, nil
}

// verify compares the token GitLab sent with the route's in constant
// time. Hashing both first gives two equal-length inputs, so the time taken
// does not depend on the length of either. Its errors never show a token.
func verify(got, want string) error {
	if want == "" {
		return fmt.Errorf("%w: the route has no token configured", source.ErrUnauthorized)
	}
	if got == "" {
		return fmt.Errorf("%w: missing %s header", source.ErrUnauthorized, HeaderToken)
	}
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
		return fmt.Errorf("%w: %s does not match", source.ErrUnauthorized, HeaderToken)
	}
	return nil
}

// idempotencyKey prefers GitLab's own delivery identifiers and falls back
// to a hash of what identifies the outcome.
func idempotencyKey(h http.Header, d *Data) (string, error) {
	// Not X-Gitlab-Event-UUID: GitLab shares it between hooks fired by one
	// request or job (it detects recursion), so distinct events can carry it.
	for _, name := range []string{HeaderIdempotencyKey} {
		if v := h.Get(name); v != "" {
			if err := source.CheckKey(name, v); err != nil {
				return "", err
			}
			return "gitlab/" + v, nil
		}
	}
	id := d.PipelineID
	if d.Job != nil {
		id = d.Job.ID
	}
	finished := ""
	if !d.FinishedAt.IsZero() {
		finished = d.FinishedAt.UTC().Format(time.RFC3339Nano)
	}
	return "gitlab/" + source.HashKey([]byte(strings.Join([]string{d.Event, strconv.FormatInt(id, 10), d.Status, finished}, "\x00"))), nil
}

// quote quotes an untrusted value for a message, cut short.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.QuoteToASCII(s)
}

func verdict(status string) string {
	switch status {
	case "success":
		return "PASSED"
	case "failed":
		return "FAILED"
	default:
		return strings.ToUpper(strings.ReplaceAll(status, "_", " "))
	}
}

func shortSHA(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return sha
}

func (d *Data) labels() map[string]string {
	l := map[string]string{
		"source":  "gitlab",
		"event":   d.Event,
		"project": d.Project,
		"ref":     d.Ref,
		"status":  d.Status,
		"user":    d.User,
		"trigger": d.Trigger,
	}
	if d.Job != nil {
		l["stage"] = d.Job.Stage
		l["job"] = d.Job.Name
		l["allow_failure"] = strconv.FormatBool(d.Job.AllowFailure)
	}
	return l
}

func (d *Data) summary() string {
	if d.Job != nil {
		return fmt.Sprintf("gitlab job %s %q #%d %s on %q", d.Project, d.Job.Name, d.Job.ID, d.Verdict, d.Ref)
	}
	return fmt.Sprintf("gitlab pipeline %s #%d %s on %q", d.Project, d.PipelineID, d.Verdict, d.Ref)
}

// parseTime reads GitLab's timestamps, which come as "2026-11-27 09:14:02
// UTC" in some hooks and RFC 3339 in others. An unreadable or missing time
// is zero: it only decorates the message.
func parseTime(s *string) time.Time {
	if s == nil || *s == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05 MST", "2006-01-02 15:04:05 -0700", "2006-01-02T15:04:05.999999999-07:00"} {
		if t, err := time.Parse(layout, *s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// seconds turns GitLab's duration in seconds (integer or fraction) into a
// duration, rounded to the second; absent or absurd values give 0.
func seconds(f *float64) time.Duration {
	if f == nil || *f <= 0 || *f > 366*24*3600 {
		return 0
	}
	return time.Duration(*f * float64(time.Second)).Round(time.Second)
}
