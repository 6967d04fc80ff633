package gitlab

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/source"
)

const secretToken = "glwht-s3cr3t-t0ken-value"

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func headers(event string, extra ...string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitLab/18.5.0")
	h.Set(HeaderEvent, event)
	h.Set(HeaderToken, secretToken)
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

func TestDecodePipeline(t *testing.T) {
	t.Parallel()
	body := fixture(t, "pipeline_failed.json")
	ev, err := Decode(headers("Pipeline Hook", HeaderIdempotencyKey, "f2b5a0c4-7d1e-4f0a-9c3b-1a2b3c4d5e6f"), body, secretToken)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := &Data{
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
		FailedJobs: []Job{
			{ID: 9002, Name: "unit", Stage: "test", Status: "failed", FailureReason: "script_failure", URL: "https://gitlab.example.com/platform/relay/-/jobs/9002"},
			{ID: 9003, Name: "lint", Stage: "test", Status: "failed", FailureReason: "script_failure", AllowFailure: true, URL: "https://gitlab.example.com/platform/relay/-/jobs/9003"},
		},
		User:       "alice",
		UserName:   "Alice Example",
		Duration:   663 * time.Second,
		CreatedAt:  time.Date(2026, 11, 27, 9, 14, 2, 0, time.UTC),
		FinishedAt: time.Date(2026, 11, 27, 9, 25, 40, 0, time.UTC),
	}
	if diff := cmp.Diff(want, ev.Data, cmp.AllowUnexported(Data{})); diff != "" {
		t.Errorf("Decode data mismatch (-want +got):\n%s", diff)
	}
	if ev.Kind != "pipeline" || ev.Ignored || ev.IdempotencyKey != "gitlab/f2b5a0c4-7d1e-4f0a-9c3b-1a2b3c4d5e6f" {
		t.Errorf("Decode event = %+v, want a pipeline keyed by Idempotency-Key", ev)
	}
	wantLabels := map[string]string{"source": "gitlab", "event": "pipeline", "project": "platform/relay", "ref": "main", "status": "failed", "user": "alice", "trigger": "push"}
	if diff := cmp.Diff(wantLabels, ev.Labels); diff != "" {
		t.Errorf("Labels mismatch (-want +got):\n%s", diff)
	}
	ev.SetRoute("ci")
	if ev.Data.(*Data).Route != "ci" {
		t.Error("SetRoute did not set Data.Route")
	}
}

func TestDecodeJob(t *testing.T) {
	t.Parallel()
	body := fixture(t, "job_failed.json")
	ev, err := Decode(headers("Job Hook"), body, secretToken)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := &Data{
		Event:       "job",
		Project:     "platform/relay",
		ProjectURL:  "https://gitlab.example.com/platform/relay",
		Ref:         "v1.4.2",
		Tag:         true,
		SHA:         "95790bf891e76fee5e1747ab589903a6a1f80f22",
		ShortSHA:    "95790bf8",
		Title:       "Release 1.4.2",
		Status:      "failed",
		Verdict:     "FAILED",
		PipelineID:  2366,
		PipelineURL: "https://gitlab.example.com/platform/relay/-/pipelines/2366",
		Job: &Job{ID: 1977, Name: "deploy:production", Stage: "deploy", Status: "failed", FailureReason: "script_failure",
			URL: "https://gitlab.example.com/platform/relay/-/jobs/1977"},
		User:       "dana",
		UserName:   "Dana Example",
		Duration:   151 * time.Second,
		CreatedAt:  time.Date(2026, 11, 27, 11, 2, 3, 886e6, time.UTC),
		FinishedAt: time.Date(2026, 11, 27, 11, 4, 41, 512e6, time.UTC),
	}
	if diff := cmp.Diff(want, ev.Data, cmp.AllowUnexported(Data{})); diff != "" {
		t.Errorf("Decode data mismatch (-want +got):\n%s", diff)
	}
	if ev.Labels["job"] != "deploy:production" || ev.Labels["stage"] != "deploy" || ev.Labels["allow_failure"] != "false" {
		t.Errorf("Labels = %v, want job, stage and allow_failure", ev.Labels)
	}
	if !strings.HasPrefix(ev.IdempotencyKey, "gitlab/sha256:") {
		t.Errorf("IdempotencyKey = %q, want a content hash without delivery headers", ev.IdempotencyKey)
	}
}

func TestDecodeIgnored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, event string
		body        []byte
		kind        string
		reason      string
	}{
		{"running pipeline", "Pipeline Hook", fixture(t, "pipeline_running.json"), "pipeline", `status "running"`},
		{"pending job", "Job Hook", []byte(`{"build_id":5,"build_status":"pending","project":{"path_with_namespace":"a/b"}}`), "job", `status "pending"`},
		{"push event", "Push Hook", []byte(`{"object_kind":"push"}`), "other", `event "Push Hook"`},
		{"system hook", "System Hook", []byte(`{}`), "other", `event "System Hook"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Decode(headers(tt.event), tt.body, secretToken)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !ev.Ignored || ev.Kind != tt.kind || !strings.Contains(ev.IgnoreReason, tt.reason) || ev.Data != nil || ev.IdempotencyKey != "" {
				t.Errorf("Decode = %+v, want ignored kind %q with reason containing %q", ev, tt.kind, tt.reason)
			}
		})
	}
}

func TestDecodeUnauthorized(t *testing.T) {
	t.Parallel()
	body := fixture(t, "pipeline_failed.json")
	tests := []struct {
		name       string
		sent, want string
		msg        string
	}{
		{"missing token", "", secretToken, "missing X-Gitlab-Token"},
		{"no token configured", secretToken, "", "no token configured"},
		{"wrong token same length", strings.Repeat("x", len(secretToken)), secretToken, "does not match"},
		{"shorter token", secretToken[:len(secretToken)-1], secretToken, "does not match"},
		{"prefix of longer token", secretToken, secretToken + "-more", "does not match"},
		{"longer token", secretToken + "x", secretToken, "does not match"},
		{"case differs", strings.ToUpper(secretToken), secretToken, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := headers("Pipeline Hook")
			h.Set(HeaderToken, tt.sent)
			ev, err := Decode(h, body, tt.want)
			if !errors.Is(err, source.ErrUnauthorized) || errors.Is(err, relay.ErrInvalid) {
				t.Fatalf("Decode = %+v, %v; want ErrUnauthorized, not ErrInvalid", ev, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Decode error = %q, want it to contain %q", err, tt.msg)
			}
			for _, s := range []string{secretToken, tt.sent, tt.want} {
				if len(s) > 4 && strings.Contains(strings.ToLower(err.Error()), strings.ToLower(s)) {
					t.Errorf("Decode error %q leaks a token", err)
				}
			}
		})
	}
	// The token is checked before anything else: a bad token on a bad
	// body is still 401, not 400.
	h := headers("Pipeline Hook")
	h.Set(HeaderToken, "wrong")
	if _, err := Decode(h, []byte("{"), secretToken); !errors.Is(err, source.ErrUnauthorized) {
		t.Errorf("Decode(bad token, bad body) error = %v, want ErrUnauthorized", err)
	}
}

func TestDecodeReplay(t *testing.T) {
	t.Parallel()
	body := fixture(t, "pipeline_failed.json")
	key := func(t *testing.T, body []byte, extra ...string) string {
		t.Helper()
		ev, err := Decode(headers("Pipeline Hook", extra...), body, secretToken)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		return ev.IdempotencyKey
	}
	// A retry carries the same Idempotency-Key: same key.
	if a, b := key(t, body, HeaderIdempotencyKey, "k1"), key(t, body, HeaderIdempotencyKey, "k1"); a != b || a != "gitlab/k1" {
		t.Errorf("retries: keys %q and %q, want both gitlab/k1", a, b)
	}
	// Idempotency-Key wins; the event UUID is never used (GitLab shares it
	// between hooks fired by one request or job).
	if got := key(t, body, HeaderIdempotencyKey, "k1", HeaderEventUUID, "u1"); got != "gitlab/k1" {
		t.Errorf("both headers: key %q, want gitlab/k1", got)
	}
	if got, plain := key(t, body, HeaderEventUUID, "u1"), key(t, body); got != plain {
		t.Errorf("event UUID only: key %q, want the content key %q", got, plain)
	}
	// Without headers: a hash of event, pipeline id, status and finish
	// time. The same outcome resent (even re-serialised) dedupes; a rerun
	// that fails again later does not.
	plain := key(t, body)
	reformatted := []byte(strings.ReplaceAll(string(body), "\n", "\r\n"))
	if got := key(t, reformatted); got != plain {
		t.Errorf("same pipeline outcome, other whitespace: key %q, want %q", got, plain)
	}
	rerun := []byte(strings.Replace(string(body), `"finished_at": "2026-11-27 09:25:40 UTC"`, `"finished_at": "2026-11-27 10:02:11 UTC"`, 1))
	if got := key(t, rerun); got == plain {
		t.Error("a rerun finishing later got the same key")
	}
	succeeded := []byte(strings.Replace(string(body), `"status": "failed",`+"\n"+`    "detailed_status"`, `"status": "success",`+"\n"+`    "detailed_status"`, 1))
	if got := key(t, succeeded); got == plain {
		t.Error("another status got the same key")
	}
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, event string
		body        string
		extra       []string
		msg         string
	}{
		{"not json", "Pipeline Hook", `[`, nil, "truncated JSON"},
		{"array", "Pipeline Hook", `[]`, nil, "expected a JSON object"},
		{"no attributes", "Pipeline Hook", `{"object_kind":"pipeline"}`, nil, "object_attributes is missing"},
		{"no id", "Pipeline Hook", `{"object_attributes":{"status":"failed"}}`, nil, "object_attributes.id is missing"},
		{"no status", "Pipeline Hook", `{"object_attributes":{"id":3}}`, nil, "object_attributes.status is missing"},
		{"no project", "Pipeline Hook", `{"object_attributes":{"id":3,"status":"failed"}}`, nil, "project.path_with_namespace is missing"},
		{"bad id type", "Pipeline Hook", `{"object_attributes":{"id":"3"}}`, nil, `field "object_attributes.id"`},
		{"job without id", "Job Hook", `{"build_status":"failed"}`, nil, "build_id is missing"},
		{"job without project", "Job Hook", `{"build_id":1,"build_status":"failed"}`, nil, "project.path_with_namespace is missing"},
		{"NUL in job name", "Job Hook", `{"build_id":1,"build_status":"failed","build_name":"a\u0000","project":{"path_with_namespace":"a/b"}}`, nil, "build.name contains a NUL"},
		{"invalid UTF-8", "Pipeline Hook", "{\"object_attributes\":{\"id\":3,\"status\":\"failed\",\"ref\":\"\xff\"},\"project\":{\"path_with_namespace\":\"a/b\"}}", nil, "body is not valid UTF-8 (first bad byte at offset 54)"},
		{"missing event header", "", `{}`, nil, "missing X-Gitlab-Event"},
		{"bad idempotency key", "Job Hook", `{"build_id":1,"build_status":"failed","project":{"path_with_namespace":"a/b"}}`, []string{HeaderIdempotencyKey, strings.Repeat("k", 256)}, "Idempotency-Key is 256 bytes"},
		{"empty body", "Job Hook", ``, nil, "empty body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(headers(tt.event, tt.extra...), []byte(tt.body), secretToken)
			if !errors.Is(err, source.ErrMalformed) || source.HTTPStatus(err) != http.StatusBadRequest {
				t.Fatalf("Decode error = %v, want ErrMalformed (400)", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Decode error = %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 11, 27, 9, 14, 2, 0, time.UTC)
	for _, s := range []string{"2026-11-27 09:14:02 UTC", "2026-11-27T09:14:02Z", "2026-11-27 10:14:02 +0100", "2026-11-27T10:14:02+01:00"} {
		if got := parseTime(&s); !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, want %v", s, got, want)
		}
	}
	for _, s := range []string{"", "yesterday"} {
		if got := parseTime(&s); !got.IsZero() {
			t.Errorf("parseTime(%q) = %v, want zero", s, got)
		}
	}
	if !parseTime(nil).IsZero() {
		t.Error("parseTime(nil) is not zero")
	}
}

// TestVerifyIsConstantTime checks the structure of verify: both tokens are
// hashed to equal length and compared with subtle.ConstantTimeCompare, and
// neither is compared with == or a byte-wise function.
func TestVerifyIsConstantTime(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "gitlab.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var verify *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "verify" {
			verify = fd
		}
	}
	if verify == nil {
		t.Fatal("no func verify in gitlab.go")
	}
	calls := map[string]int{}
	ast.Inspect(verify.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok {
					calls[id.Name+"."+sel.Sel.Name]++
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				x, xok := n.X.(*ast.Ident)
				y, yok := n.Y.(*ast.Ident)
				if xok && yok {
					t.Errorf("verify compares %s %s %s directly", x.Name, n.Op, y.Name)
				}
			}
		}
		return true
	})
	if calls["subtle.ConstantTimeCompare"] != 1 || calls["sha256.Sum256"] != 2 {
		t.Errorf("verify calls %v, want subtle.ConstantTimeCompare once after sha256.Sum256 of both tokens", calls)
	}
	for _, bad := range []string{"bytes.Equal", "strings.EqualFold", "strings.Compare", "hmac.Equal"} {
		if calls[bad] > 0 {
			t.Errorf("verify calls %s", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("Pipeline Hook", fixture(f, "pipeline_failed.json"), secretToken)
	f.Add("Pipeline Hook", fixture(f, "pipeline_running.json"), secretToken)
	f.Add("Job Hook", fixture(f, "job_failed.json"), secretToken)
	f.Add("Job Hook", []byte(`{"build_id":1,"build_status":"failed","project_name":"x"}`), "wrong")
	f.Fuzz(func(t *testing.T, event string, body []byte, sent string) {
		h := http.Header{}
		h.Set(HeaderEvent, event)
		h.Set(HeaderToken, sent)
		ev, err := Decode(h, body, secretToken)
		if err != nil {
			if ev != nil {
				t.Fatalf("Decode returned an event with an error: %+v, %v", ev, err)
			}
			if !errors.Is(err, source.ErrUnauthorized) && !errors.Is(err, source.ErrMalformed) {
				t.Fatalf("Decode error %v is neither ErrUnauthorized nor ErrMalformed", err)
			}
			return
		}
		if h.Get(HeaderToken) != secretToken {
			t.Fatalf("Decode accepted token %q", sent)
		}
		if !ev.Ignored && (ev.Data == nil || ev.IdempotencyKey == "") {
			t.Fatalf("Decode = %+v: a rendered event needs data and a key", ev)
		}
		// What templates see holds no control, bidi or line-breaking
		// character: every field is one line.
		if d, ok := ev.Data.(*Data); ok {
			c := d.Clean().(*Data)
			s := fmt.Sprintf("%+v", *c)
			if c.Job != nil {
				s += fmt.Sprintf("%+v", *c.Job)
			}
			if strings.IndexFunc(s, clean.Forbidden) >= 0 {
				t.Fatalf("Clean() of %s left %q", body, s)
			}
		}
	})
}
