package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/source/generic"
	"github.com/skype-relay/relay/relay/source/github"
	"github.com/skype-relay/relay/relay/source/gitlab"
)

func githubRun() *github.Data {
	return &github.Data{
		Route:         "ci",
		Event:         "workflow_run",
		Action:        "completed",
		Repository:    "skype-relay/relay",
		RepositoryURL: "https://github.com/skype-relay/relay",
		Name:          "CI",
		Title:         "Fix retry jitter in delivery worker",
		Branch:        "main",
		SHA:           "9f2c4e1b7a3d5f60812c9e4b3a7d6f5e4c3b2a19",
		ShortSHA:      "9f2c4e1",
		Status:        "completed",
		Conclusion:    "failure",
		Verdict:       "FAILED",
		Actor:         "bob",
		URL:           "https://github.com/skype-relay/relay/actions/runs/11223344556",
		RunID:         11223344556,
		RunNumber:     123,
		RunAttempt:    2,
		Trigger:       "push",
		StartedAt:     t0,
		UpdatedAt:     t0.Add(6*time.Minute + 37*time.Second),
		Duration:      6*time.Minute + 37*time.Second,
	}
}

func gitlabPipeline() *gitlab.Data {
	return &gitlab.Data{
		Route:       "ci",
		Event:       "pipeline",
		Project:     "platform/relay",
		ProjectURL:  "https://gitlab.example.com/platform/relay",
		Ref:         "main",
		SHA:         "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
		ShortSHA:    "bcbb5ec3",
		Title:       "Render GitLab pipelines",
		Status:      "failed",
		Verdict:     "FAILED",
		Trigger:     "push",
		PipelineID:  31415,
		PipelineIID: 271,
		PipelineURL: "https://gitlab.example.com/platform/relay/-/pipelines/31415",
		FailedJobs: []gitlab.Job{
			{ID: 9002, Name: "unit", Stage: "test", Status: "failed", FailureReason: "script_failure"},
			{ID: 9003, Name: "lint", Stage: "test", Status: "failed", FailureReason: "script_failure", AllowFailure: true},
		},
		User:     "alice",
		UserName: "Alice Example",
		Duration: 663 * time.Second,
	}
}

// payload decodes a JSON object as the generic decoder does (numbers as
// json.Number).
func payload(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("test payload %s: %v", s, err)
	}
	return m
}

func TestValueTemplatesGolden(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})

	suite := &github.Data{
		Event: "check_suite", Action: "completed", Repository: "skype-relay/relay", Name: "GitHub Actions",
		Title: "Release 1.4.2", Branch: "release/1.4", ShortSHA: "c0ffee0", Status: "completed", Conclusion: "success",
		Verdict: "PASSED", Actor: "dana", RunID: 29876543999, Duration: 4*time.Minute + 30*time.Second,
		URL: "https://github.com/skype-relay/relay/commit/c0ffee00deadbeef1234567890abcdef12345678/checks",
	}
	bare := &github.Data{Event: "workflow_run", Repository: "o/r", Status: "completed", Conclusion: "cancelled", Verdict: "CANCELLED", RunAttempt: 1}
	unicode := githubRun()
	unicode.Name, unicode.Title, unicode.Actor, unicode.Branch = "Déploiement 🚀", "Störung beheben — Kunden betroffen", "山田", "fix/ümlaut"

	job := &gitlab.Data{
		Event: "job", Project: "platform/relay", Ref: "v1.4.2", Tag: true, ShortSHA: "95790bf8", Title: "Release 1.4.2",
		Status: "failed", Verdict: "FAILED", PipelineID: 2366, User: "dana", Duration: 151 * time.Second,
		Job: &gitlab.Job{ID: 1977, Name: "deploy:production", Stage: "deploy", Status: "failed", FailureReason: "script_failure",
			URL: "https://gitlab.example.com/platform/relay/-/jobs/1977"},
	}
	passed := &gitlab.Data{Event: "pipeline", Project: "g/p", Ref: "main", ShortSHA: "0123abcd", Status: "success", Verdict: "PASSED", PipelineID: 7}

	tests := []struct {
		name, template string
		data           any
	}{
		{"github_workflow_run_failed", "github", githubRun()},
		{"github_check_suite_passed", "github", suite},
		{"github_bare", "github", bare},
		{"github_unicode", "github", unicode},
		{"gitlab_pipeline_failed", "gitlab", gitlabPipeline()},
		{"gitlab_job_failed_tag", "gitlab", job},
		{"gitlab_pipeline_passed_bare", "gitlab", passed},
		{"generic_known_fields", "generic", &generic.Data{Route: "deploys", Payload: payload(t,
			`{"title":"Deploy finished","status":"success","message":"payments-api 2026.11.27-3 is live in eu-west-1.","url":"https://deploy.example.com/runs/8812","extra":{"a":1}}`)}},
		{"generic_unknown_fields", "generic", &generic.Data{Route: "hooks", Payload: payload(t,
			`{"event":"backup.completed","bytes":1234567890,"ok":true,"hosts":["db-1","db-2"],"note":null,"ünïcode":"✓"}`)}},
		{"generic_empty_object", "generic", &generic.Data{Route: "hooks", Payload: map[string]any{}}},
		{"generic_odd_types", "generic", &generic.Data{Route: "hooks", Payload: payload(t,
			`{"summary":"Queue depth high","severity":2,"description":"depth 1200 > 1000","link":"https://q.example.com"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := e.RenderValue(tt.template, tt.data)
			if err != nil {
				t.Fatalf("RenderValue(%q): %v", tt.template, err)
			}
			checkGolden(t, tt.name, got+"\n")
		})
	}
}

func TestRenderValueErrors(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})
	if _, err := e.RenderValue("nope", nil); !errors.Is(err, ErrUnknownTemplate) {
		t.Errorf("RenderValue(unknown) error = %v, want ErrUnknownTemplate", err)
	}
	if _, err := e.RenderValueParts("nope", nil); !errors.Is(err, ErrUnknownTemplate) {
		t.Errorf("RenderValueParts(unknown) error = %v, want ErrUnknownTemplate", err)
	}
	// The github template on the wrong data is a render error (422), not a panic.
	_, err := e.RenderValue("github", &generic.Data{})
	if !errors.Is(err, relay.ErrInvalid) || !strings.Contains(err.Error(), `"github"`) {
		t.Errorf("RenderValue(github, wrong data) error = %v, want ErrInvalid naming the template", err)
	}
	// Output beyond MaxOutputBytes stops with an error.
	huge := &generic.Data{Payload: map[string]any{"title": "t", "message": strings.Repeat("x", MaxOutputBytes)}}
	if _, err := e.RenderValueParts("generic", huge); !errors.Is(err, ErrTooLarge) || !errors.Is(err, relay.ErrInvalid) {
		t.Errorf("RenderValueParts(huge) error = %v, want ErrTooLarge and ErrInvalid", err)
	}
}

func TestGenericMissingKeys(t *testing.T) {
	t.Parallel()
	// A user file for generic payloads may read keys a sender left out.
	own := writeFile(t, "own.tmpl", `{{ .Payload.missing }}|{{ with .Payload.a }}{{ .b }}{{ end }}|{{ or .Payload.nope "default" }}`)
	blocks := writeFile(t, "blocks.tmpl", `{{ define "generic.fields" }}FIELDS {{ .Payload.absent }}{{ end }}`)
	e := newTestEngine(t, Options{Files: map[string]string{"own": own, "blocks": blocks}})
	d := &generic.Data{Route: "r", Payload: map[string]any{"a": map[string]any{"c": "x"}}}
	got, err := e.RenderValue("own", d)
	if err != nil {
		t.Fatalf("RenderValue(own): %v", err)
	}
	if want := "<no value>|<no value>|default"; got != want {
		t.Errorf("RenderValue(own) = %q, want %q", got, want)
	}
	// A file of only generic.* blocks customises the generic template,
	// and missing keys stay harmless there too.
	got, err = e.RenderValue("blocks", d)
	if err != nil {
		t.Fatalf("RenderValue(blocks): %v", err)
	}
	if want := "Webhook on route r\nFIELDS <no value>"; got != want {
		t.Errorf("RenderValue(blocks) = %q, want %q", got, want)
	}
	// The shipped alertmanager template still catches typos.
	if _, err := e.Render("alertmanager", NewData(message(nil, cpuAlert(1)), "r", "c")); err != nil {
		t.Errorf("Render(alertmanager): %v", err)
	}
}

func TestOverrideBlocksOfValueTemplates(t *testing.T) {
	t.Parallel()
	title := writeFile(t, "title.tmpl", `{{ define "github.title" }}{{ .Verdict }}: {{ .Repository }}@{{ .Branch }}{{ end }}`)
	mixed := writeFile(t, "mixed.tmpl", `{{ define "github.title" }}x{{ end }}{{ define "alertmanager.time" }}y{{ end }}`)
	e := newTestEngine(t, Options{Files: map[string]string{"title": title, "mixed": mixed}})
	got, err := e.RenderValue("title", githubRun())
	if err != nil {
		t.Fatalf("RenderValue(title): %v", err)
	}
	if !strings.HasPrefix(got, "FAILED: skype-relay/relay@main\nFix retry jitter") {
		t.Errorf("RenderValue(title) = %q, want the github layout with the new title", got)
	}
	// The shipped github template is unchanged.
	def, err := e.RenderValue("github", githubRun())
	if err != nil || !strings.HasPrefix(def, "[FAILED] CI #123") {
		t.Errorf("RenderValue(github) = %q, %v; an override leaked into the shipped set", def, err)
	}
	// Blocks of two templates: the file is taken as an alertmanager
	// customisation, as before.
	if _, err := e.Render("mixed", NewData(message(nil, cpuAlert(1)), "r", "c")); err != nil {
		t.Errorf("Render(mixed): %v", err)
	}
}

func TestRenderValueParts(t *testing.T) {
	t.Parallel()
	const limit = 400
	e := newTestEngine(t, Options{MaxBytes: limit, MaxParts: 3})

	short := &generic.Data{Route: "r", Payload: map[string]any{"title": "short"}}
	parts, err := e.RenderValueParts("generic", short)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"short"}, parts); diff != "" {
		t.Errorf("RenderValueParts(short) mismatch (-want +got):\n%s", diff)
	}

	var lines []string
	for i := range 12 {
		lines = append(lines, fmt.Sprintf("line %02d: Störung im Zahlungsverkehr, bitte prüfen.", i))
	}
	long := &generic.Data{Route: "r", Payload: map[string]any{"title": "Long", "message": strings.Join(lines, "\n")}}
	parts, err = e.RenderValueParts("generic", long)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 2 || len(parts) > 3 {
		t.Fatalf("RenderValueParts(long) = %d parts %q, want 2 or 3", len(parts), parts)
	}
	var joined []string
	for k, p := range parts {
		if len(p) > limit || !utf8.ValidString(p) {
			t.Errorf("part %d is %d bytes or invalid UTF-8, limit %d", k, len(p), limit)
		}
		prefix := fmt.Sprintf("(%d/%d) ", k+1, len(parts))
		if !strings.HasPrefix(p, prefix) {
			t.Errorf("part %d = %q, want prefix %q", k, p, prefix)
		}
		joined = append(joined, strings.TrimPrefix(p, prefix))
	}
	// Cut at line boundaries only: every line arrives whole, in order.
	whole, _ := e.RenderValue("generic", long)
	if got := strings.Join(joined, "\n"); got != whole {
		t.Errorf("parts joined = %q, want the whole text %q", got, whole)
	}

	// More than MaxParts: the last part says the message was cut.
	for i := range 40 {
		lines = append(lines, fmt.Sprintf("more %02d: %s", i, strings.Repeat("wort ", 8)))
	}
	longer := &generic.Data{Route: "r", Payload: map[string]any{"title": "Longer", "message": strings.Join(lines, "\n")}}
	parts, err = e.RenderValueParts("generic", longer)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 || !strings.HasSuffix(parts[2], "\n[message cut: too long]") || !strings.HasPrefix(parts[2], "(3/3) ") {
		t.Errorf("RenderValueParts(longer) = %q, want 3 parts, the last noting the cut", parts)
	}
	for k, p := range parts {
		if len(p) > limit {
			t.Errorf("part %d is %d bytes, limit %d", k, len(p), limit)
		}
	}

	// One word longer than a message is cut at a character boundary.
	word := &generic.Data{Route: "r", Payload: map[string]any{"title": strings.Repeat("日本語", 60)}}
	parts, err = e.RenderValueParts("generic", word)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 2 {
		t.Fatalf("RenderValueParts(word) = %q, want several parts", parts)
	}
	for k, p := range parts {
		if len(p) > limit || !utf8.ValidString(p) {
			t.Errorf("part %d is %d bytes or invalid UTF-8", k, len(p))
		}
	}
}

// FuzzGenericTemplate checks that the shipped generic template renders
// every object the generic decoder accepts: whatever keys a sender leaves
// out or sends with odd types, the answer is never a 422, and what it
// sends is cleaned.
func FuzzGenericTemplate(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"title":"t","status":"ok"}`, `{"title":{"a":1},"status":[1,2],"message":null,"url":false}`,
		`{"summary":3.5e10,"severity":true,"body":"x\ny","link":{"href":"u"}}`, `{"a":{"b":{"c":[{"d":null}]}}}`,
	} {
		f.Add([]byte(s))
	}
	e := newTestEngine(f, Options{MaxBytes: MinMaxBytes, MaxParts: 3})
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := generic.Decode(nil, body)
		if err != nil {
			return
		}
		ev.SetRoute("fuzz")
		parts, err := e.RenderValueParts("generic", ev.Data)
		if err != nil {
			t.Fatalf("RenderValueParts(generic, %s): %v", body, err)
		}
		for k, p := range parts {
			if len(p) > MinMaxBytes || !utf8.ValidString(p) {
				t.Fatalf("part %d of %s is %d bytes or invalid UTF-8", k, body, len(p))
			}
			if r, ok := allowed(p); !ok {
				t.Fatalf("part %d of %s holds %U: %q", k, body, r, p)
			}
		}
	})
}
