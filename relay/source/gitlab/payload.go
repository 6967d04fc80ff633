package gitlab

import (
	"fmt"
	"strconv"

	"github.com/skype-relay/relay/relay/source"
)

// The payload types hold only the fields relay shows.

type user struct {
	Name     string `json:"name"`
	Username string `json:"username"`
}

type project struct {
	ID                int64  `json:"id"`
	WebURL            string `json:"web_url"`
	PathWithNamespace string `json:"path_with_namespace"`
}

type pipelinePayload struct {
	ObjectKind       string `json:"object_kind"`
	ObjectAttributes *struct {
		ID         int64    `json:"id"`
		IID        int64    `json:"iid"`
		Name       string   `json:"name"`
		Ref        string   `json:"ref"`
		Tag        bool     `json:"tag"`
		SHA        string   `json:"sha"`
		Source     string   `json:"source"`
		Status     string   `json:"status"`
		CreatedAt  *string  `json:"created_at"`
		FinishedAt *string  `json:"finished_at"`
		Duration   *float64 `json:"duration"`
		URL        string   `json:"url"`
	} `json:"object_attributes"`
	User    *user    `json:"user"`
	Project *project `json:"project"`
	Commit  *struct {
		Title   string `json:"title"`
		Message string `json:"message"`
	} `json:"commit"`
	Builds []struct {
		ID            int64   `json:"id"`
		Stage         string  `json:"stage"`
		Name          string  `json:"name"`
		Status        string  `json:"status"`
		FailureReason *string `json:"failure_reason"`
		AllowFailure  bool    `json:"allow_failure"`
	} `json:"builds"`
}

type jobPayload struct {
	ObjectKind         string   `json:"object_kind"`
	Ref                string   `json:"ref"`
	Tag                bool     `json:"tag"`
	SHA                string   `json:"sha"`
	BuildID            int64    `json:"build_id"`
	BuildName          string   `json:"build_name"`
	BuildStage         string   `json:"build_stage"`
	BuildStatus        string   `json:"build_status"`
	BuildCreatedAt     *string  `json:"build_created_at"`
	BuildFinishedAt    *string  `json:"build_finished_at"`
	BuildDuration      *float64 `json:"build_duration"`
	BuildAllowFailure  bool     `json:"build_allow_failure"`
	BuildFailureReason string   `json:"build_failure_reason"`
	PipelineID         int64    `json:"pipeline_id"`
	ProjectName        string   `json:"project_name"`
	User               *user    `json:"user"`
	Commit             *struct {
		Message string `json:"message"`
	} `json:"commit"`
	Project *project `json:"project"`
}

// maxFailedJobs caps the failed jobs listed for one pipeline.
const maxFailedJobs = 50

func decodePipeline(body []byte) (*source.Event, error) {
	var p pipelinePayload
	if err := source.DecodeJSON(body, &p); err != nil {
		return nil, err
	}
	a := p.ObjectAttributes
	switch {
	case a == nil:
		return nil, fmt.Errorf("%w: object_attributes is missing", source.ErrMalformed)
	case a.ID == 0:
		return nil, fmt.Errorf("%w: object_attributes.id is missing", source.ErrMalformed)
	case a.Status == "":
		return nil, fmt.Errorf("%w: object_attributes.status is missing", source.ErrMalformed)
	case p.Project == nil || p.Project.PathWithNamespace == "":
		return nil, fmt.Errorf("%w: project.path_with_namespace is missing", source.ErrMalformed)
	}
	switch a.Status {
	case "success", "failed", "canceled", "skipped":
	default:
		return &source.Event{Kind: "pipeline", Ignored: true,
			IgnoreReason: fmt.Sprintf("gitlab pipeline status %s: only finished pipelines are rendered", quote(a.Status))}, nil
	}
	d := &Data{
		Event:       "pipeline",
		Project:     p.Project.PathWithNamespace,
		ProjectURL:  p.Project.WebURL,
		Ref:         a.Ref,
		Tag:         a.Tag,
		SHA:         a.SHA,
		ShortSHA:    shortSHA(a.SHA),
		Title:       a.Name,
		Status:      a.Status,
		Verdict:     verdict(a.Status),
		Trigger:     a.Source,
		PipelineID:  a.ID,
		PipelineIID: a.IID,
		PipelineURL: a.URL,
		Duration:    seconds(a.Duration),
		CreatedAt:   parseTime(a.CreatedAt),
		FinishedAt:  parseTime(a.FinishedAt),
	}
	if d.PipelineURL == "" && d.ProjectURL != "" {
		d.PipelineURL = d.ProjectURL + "/-/pipelines/" + strconv.FormatInt(a.ID, 10)
	}
	if d.Title == "" && p.Commit != nil {
		d.Title = source.FirstLine(p.Commit.Title, 120)
		if d.Title == "" {
			d.Title = source.FirstLine(p.Commit.Message, 120)
		}
	}
	if p.User != nil {
		d.User, d.UserName = p.User.Username, p.User.Name
	}
	for i, b := range p.Builds {
		if b.Status != "failed" {
			continue
		}
		if len(d.FailedJobs) == maxFailedJobs {
			break
		}
		j := Job{ID: b.ID, Name: b.Name, Stage: b.Stage, Status: b.Status, AllowFailure: b.AllowFailure}
		if b.FailureReason != nil {
			j.FailureReason = *b.FailureReason
		}
		if d.ProjectURL != "" && b.ID != 0 {
			j.URL = d.ProjectURL + "/-/jobs/" + strconv.FormatInt(b.ID, 10)
		}
		if err := checkJob(fmt.Sprintf("builds[%d]", i), j); err != nil {
			return nil, err
		}
		d.FailedJobs = append(d.FailedJobs, j)
	}
	return finish(d)
}

func decodeJob(body []byte) (*source.Event, error) {
	var p jobPayload
	if err := source.DecodeJSON(body, &p); err != nil {
		return nil, err
	}
	switch {
	case p.BuildID == 0:
		return nil, fmt.Errorf("%w: build_id is missing", source.ErrMalformed)
	case p.BuildStatus == "":
		return nil, fmt.Errorf("%w: build_status is missing", source.ErrMalformed)
	}
	switch p.BuildStatus {
	case "success", "failed", "canceled":
	default:
		return &source.Event{Kind: "job", Ignored: true,
			IgnoreReason: fmt.Sprintf("gitlab job status %s: only finished jobs are rendered", quote(p.BuildStatus))}, nil
	}
	d := &Data{
		Event:      "job",
		Ref:        p.Ref,
		Tag:        p.Tag,
		SHA:        p.SHA,
		ShortSHA:   shortSHA(p.SHA),
		Status:     p.BuildStatus,
		Verdict:    verdict(p.BuildStatus),
		PipelineID: p.PipelineID,
		Duration:   seconds(p.BuildDuration),
		CreatedAt:  parseTime(p.BuildCreatedAt),
		FinishedAt: parseTime(p.BuildFinishedAt),
		Job: &Job{
			ID:            p.BuildID,
			Name:          p.BuildName,
			Stage:         p.BuildStage,
			Status:        p.BuildStatus,
			FailureReason: p.BuildFailureReason,
			AllowFailure:  p.BuildAllowFailure,
		},
	}
	if p.Project != nil {
		d.Project, d.ProjectURL = p.Project.PathWithNamespace, p.Project.WebURL
	}
	if d.Project == "" {
		// Older GitLab versions send only project_name, "Group / Project".
		d.Project = p.ProjectName
	}
	if d.Project == "" {
		return nil, fmt.Errorf("%w: project.path_with_namespace is missing", source.ErrMalformed)
	}
	if d.ProjectURL != "" {
		d.Job.URL = d.ProjectURL + "/-/jobs/" + strconv.FormatInt(p.BuildID, 10)
		if p.PipelineID != 0 {
			d.PipelineURL = d.ProjectURL + "/-/pipelines/" + strconv.FormatInt(p.PipelineID, 10)
		}
	}
	if p.Commit != nil {
		d.Title = source.FirstLine(p.Commit.Message, 120)
	}
	if p.User != nil {
		d.User, d.UserName = p.User.Username, p.User.Name
	}
	if err := checkJob("build", *d.Job); err != nil {
		return nil, err
	}
	return finish(d)
}

func checkJob(field string, j Job) error {
	return source.CheckStrings(field+".name", j.Name, field+".stage", j.Stage, field+".failure_reason", j.FailureReason)
}

// finish checks the strings of d and builds the event.
func finish(d *Data) (*source.Event, error) {
	if err := source.CheckStrings(
		"project.path_with_namespace", d.Project, "project.web_url", d.ProjectURL,
		"ref", d.Ref, "sha", d.SHA, "title", d.Title, "status", d.Status, "source", d.Trigger,
		"url", d.PipelineURL, "user.username", d.User, "user.name", d.UserName,
	); err != nil {
		return nil, err
	}
	return &source.Event{Kind: d.Event, Data: d, Labels: d.labels(), Summary: d.summary()}, nil
}
