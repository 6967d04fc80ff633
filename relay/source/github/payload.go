package github

import (
	"fmt"
	"time"

	"github.com/skype-relay/relay/relay/source"
)

// The payload types hold only the fields relay shows; encoding/json skips
// the rest of GitHub's (large) payloads without keeping them.

type account struct {
	Login string `json:"login"`
}

type repository struct {
	FullName string `json:"full_name"`
	HTMLURL  string `json:"html_url"`
}

type commit struct {
	Message string `json:"message"`
}

type workflowRunPayload struct {
	Action      string       `json:"action"`
	WorkflowRun *workflowRun `json:"workflow_run"`
	Workflow    *struct {
		Name string `json:"name"`
	} `json:"workflow"`
	Repository *repository `json:"repository"`
	Sender     account     `json:"sender"`
}

type workflowRun struct {
	ID              int64      `json:"id"`
	Name            string     `json:"name"`
	DisplayTitle    string     `json:"display_title"`
	HeadBranch      string     `json:"head_branch"`
	HeadSHA         string     `json:"head_sha"`
	RunNumber       int64      `json:"run_number"`
	RunAttempt      int64      `json:"run_attempt"`
	Event           string     `json:"event"`
	Status          string     `json:"status"`
	Conclusion      string     `json:"conclusion"`
	HTMLURL         string     `json:"html_url"`
	RunStartedAt    *time.Time `json:"run_started_at"`
	CreatedAt       *time.Time `json:"created_at"`
	UpdatedAt       *time.Time `json:"updated_at"`
	Actor           account    `json:"actor"`
	TriggeringActor account    `json:"triggering_actor"`
	HeadCommit      *commit    `json:"head_commit"`
}

type checkSuitePayload struct {
	Action     string      `json:"action"`
	CheckSuite *checkSuite `json:"check_suite"`
	Repository *repository `json:"repository"`
	Sender     account     `json:"sender"`
}

type checkSuite struct {
	ID         int64  `json:"id"`
	HeadBranch string `json:"head_branch"`
	HeadSHA    string `json:"head_sha"`
	Status     string `json:"status"`
	Conclusion string `json:"conclusion"`
	App        *struct {
		Name string `json:"name"`
	} `json:"app"`
	CreatedAt  *time.Time `json:"created_at"`
	UpdatedAt  *time.Time `json:"updated_at"`
	HeadCommit *commit    `json:"head_commit"`
}

func decodeWorkflowRun(body []byte) (*source.Event, error) {
	var p workflowRunPayload
	if err := source.DecodeJSON(body, &p); err != nil {
		return nil, err
	}
	if p.Action != "completed" {
		return &source.Event{Kind: "workflow_run", Ignored: true,
			IgnoreReason: fmt.Sprintf("github workflow_run action %s: only completed runs are rendered", quoteHeader(p.Action))}, nil
	}
	r := p.WorkflowRun
	switch {
	case r == nil:
		return nil, fmt.Errorf("%w: workflow_run is missing", source.ErrMalformed)
	case r.ID == 0:
		return nil, fmt.Errorf("%w: workflow_run.id is missing", source.ErrMalformed)
	case p.Repository == nil || p.Repository.FullName == "":
		return nil, fmt.Errorf("%w: repository.full_name is missing", source.ErrMalformed)
	}
	d := &Data{
		Event:         "workflow_run",
		Action:        p.Action,
		Repository:    p.Repository.FullName,
		RepositoryURL: p.Repository.HTMLURL,
		Name:          r.Name,
		Title:         r.DisplayTitle,
		Branch:        r.HeadBranch,
		SHA:           r.HeadSHA,
		ShortSHA:      shortSHA(r.HeadSHA),
		Status:        r.Status,
		Conclusion:    r.Conclusion,
		Verdict:       verdict(r.Conclusion, r.Status),
		Actor:         r.TriggeringActor.Login,
		URL:           r.HTMLURL,
		RunID:         r.ID,
		RunNumber:     r.RunNumber,
		RunAttempt:    r.RunAttempt,
		Trigger:       r.Event,
		StartedAt:     first(r.RunStartedAt, r.CreatedAt),
		UpdatedAt:     first(r.UpdatedAt),
	}
	if d.Name == "" && p.Workflow != nil {
		d.Name = p.Workflow.Name
	}
	if d.Actor == "" {
		d.Actor = r.Actor.Login
	}
	if d.Actor == "" {
		d.Actor = p.Sender.Login
	}
	if d.Title == "" && r.HeadCommit != nil {
		d.Title = source.FirstLine(r.HeadCommit.Message, 120)
	}
	return finish(d)
}

func decodeCheckSuite(body []byte) (*source.Event, error) {
	var p checkSuitePayload
	if err := source.DecodeJSON(body, &p); err != nil {
		return nil, err
	}
	if p.Action != "completed" {
		return &source.Event{Kind: "check_suite", Ignored: true,
			IgnoreReason: fmt.Sprintf("github check_suite action %s: only completed suites are rendered", quoteHeader(p.Action))}, nil
	}
	s := p.CheckSuite
	switch {
	case s == nil:
		return nil, fmt.Errorf("%w: check_suite is missing", source.ErrMalformed)
	case s.ID == 0:
		return nil, fmt.Errorf("%w: check_suite.id is missing", source.ErrMalformed)
	case p.Repository == nil || p.Repository.FullName == "":
		return nil, fmt.Errorf("%w: repository.full_name is missing", source.ErrMalformed)
	}
	d := &Data{
		Event:         "check_suite",
		Action:        p.Action,
		Repository:    p.Repository.FullName,
		RepositoryURL: p.Repository.HTMLURL,
		Branch:        s.HeadBranch,
		SHA:           s.HeadSHA,
		ShortSHA:      shortSHA(s.HeadSHA),
		Status:        s.Status,
		Conclusion:    s.Conclusion,
		Verdict:       verdict(s.Conclusion, s.Status),
		Actor:         p.Sender.Login,
		RunID:         s.ID,
		StartedAt:     first(s.CreatedAt),
		UpdatedAt:     first(s.UpdatedAt),
	}
	if s.App != nil {
		d.Name = s.App.Name
	}
	if s.HeadCommit != nil {
		d.Title = source.FirstLine(s.HeadCommit.Message, 120)
	}
	if d.RepositoryURL != "" && d.SHA != "" {
		d.URL = d.RepositoryURL + "/commit/" + d.SHA + "/checks"
	}
	return finish(d)
}

// finish checks the strings of d and builds the event.
func finish(d *Data) (*source.Event, error) {
	if err := source.CheckStrings(
		"repository.full_name", d.Repository, "repository.html_url", d.RepositoryURL,
		"name", d.Name, "title", d.Title, "head_branch", d.Branch, "head_sha", d.SHA,
		"status", d.Status, "conclusion", d.Conclusion, "actor", d.Actor,
		"html_url", d.URL, "event", d.Trigger,
	); err != nil {
		return nil, err
	}
	if d.Status == "completed" && !d.StartedAt.IsZero() && d.UpdatedAt.After(d.StartedAt) {
		d.Duration = d.UpdatedAt.Sub(d.StartedAt)
	}
	return &source.Event{Kind: d.Event, Data: d, Labels: d.labels(), Summary: d.summary()}, nil
}

// first returns the first time that is set, in UTC, or the zero time.
func first(ts ...*time.Time) time.Time {
	for _, t := range ts {
		if t != nil && !t.IsZero() {
			return t.UTC()
		}
	}
	return time.Time{}
}
