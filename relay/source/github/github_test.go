package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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

const secret = "It's a Secret to Everybody"

func sign(body []byte, key string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// headers builds the headers GitHub sends for body.
func headers(event, delivery string, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/abc1234")
	h.Set(HeaderEvent, event)
	if delivery != "" {
		h.Set(HeaderDelivery, delivery)
	}
	h.Set(HeaderSignature, sign(body, secret))
	return h
}

func TestDecodeWorkflowRun(t *testing.T) {
	t.Parallel()
	body := fixture(t, "workflow_run_completed_failure.json")
	ev, err := Decode(headers("workflow_run", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body), body, secret)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := &Data{
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
		StartedAt:     time.Date(2026, 11, 27, 9, 15, 10, 0, time.UTC),
		UpdatedAt:     time.Date(2026, 11, 27, 9, 21, 47, 0, time.UTC),
		Duration:      6*time.Minute + 37*time.Second,
	}
	if diff := cmp.Diff(want, ev.Data, cmp.AllowUnexported(Data{})); diff != "" {
		t.Errorf("Decode data mismatch (-want +got):\n%s", diff)
	}
	if ev.Kind != "workflow_run" || ev.Ignored || ev.Ping {
		t.Errorf("Decode event = %+v, want a workflow_run to render", ev)
	}
	if ev.IdempotencyKey != "github/72d3162e-cc78-11e3-81ab-4c9367dc0958" {
		t.Errorf("IdempotencyKey = %q, want github/<delivery GUID>", ev.IdempotencyKey)
	}
	wantLabels := map[string]string{
		"source": "github", "event": "workflow_run", "repository": "skype-relay/relay", "name": "CI",
		"branch": "main", "status": "completed", "conclusion": "failure", "actor": "bob", "trigger": "push",
	}
	if diff := cmp.Diff(wantLabels, ev.Labels); diff != "" {
		t.Errorf("Labels mismatch (-want +got):\n%s", diff)
	}
	ev.SetRoute("ci")
	if ev.Data.(*Data).Route != "ci" {
		t.Error("SetRoute did not set Data.Route")
	}
	if !strings.Contains(ev.Summary, "skype-relay/relay") || !strings.Contains(ev.Summary, "#123") {
		t.Errorf("Summary = %q, want the repository and run number", ev.Summary)
	}
}

func TestDecodeCheckSuite(t *testing.T) {
	t.Parallel()
	body := fixture(t, "check_suite_completed_success.json")
	ev, err := Decode(headers("check_suite", "d1", body), body, secret)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	d := ev.Data.(*Data)
	want := &Data{
		Event:         "check_suite",
		Action:        "completed",
		Repository:    "skype-relay/relay",
		RepositoryURL: "https://github.com/skype-relay/relay",
		Name:          "GitHub Actions",
		Title:         "Release 1.4.2",
		Branch:        "release/1.4",
		SHA:           "c0ffee00deadbeef1234567890abcdef12345678",
		ShortSHA:      "c0ffee0",
		Status:        "completed",
		Conclusion:    "success",
		Verdict:       "PASSED",
		Actor:         "dana",
		URL:           "https://github.com/skype-relay/relay/commit/c0ffee00deadbeef1234567890abcdef12345678/checks",
		RunID:         29876543999,
		StartedAt:     time.Date(2026, 11, 27, 11, 2, 3, 0, time.UTC),
		UpdatedAt:     time.Date(2026, 11, 27, 11, 6, 33, 0, time.UTC),
		Duration:      4*time.Minute + 30*time.Second,
	}
	if diff := cmp.Diff(want, d, cmp.AllowUnexported(Data{})); diff != "" {
		t.Errorf("Decode data mismatch (-want +got):\n%s", diff)
	}
}

func TestDecodePing(t *testing.T) {
	t.Parallel()
	body := fixture(t, "ping.json")
	ev, err := Decode(headers("ping", "p1", body), body, secret)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !ev.Ping || ev.Ignored || ev.Data != nil || ev.IdempotencyKey != "" || ev.Kind != "ping" {
		t.Errorf("Decode(ping) = %+v, want a bare ping event", ev)
	}
	// A ping is signed like every delivery.
	h := headers("ping", "p1", body)
	h.Del(HeaderSignature)
	if _, err := Decode(h, body, secret); !errors.Is(err, source.ErrUnauthorized) {
		t.Errorf("Decode(unsigned ping) error = %v, want ErrUnauthorized", err)
	}
}

func TestDecodeIgnored(t *testing.T) {
	t.Parallel()
	inProgress := fixture(t, "workflow_run_in_progress.json")
	requested := []byte(`{"action":"requested","check_suite":{"id":1}}`)
	tests := []struct {
		name, event string
		body        []byte
		kind        string
		reason      string
	}{
		{"workflow run in progress", "workflow_run", inProgress, "workflow_run", `action "in_progress"`},
		{"check suite requested", "check_suite", requested, "check_suite", `action "requested"`},
		{"other event", "push", []byte(`{"ref":"refs/heads/main"}`), "other", `event "push"`},
		{"odd event name", "x\u00e9\n", []byte(`{}`), "other", `event "x\u00e9\n"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Decode(headers(tt.event, "d", tt.body), tt.body, secret)
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
	body := fixture(t, "workflow_run_completed_failure.json")
	good := sign(body, secret)
	tests := []struct {
		name   string
		sig    string
		secret string
		body   []byte
		msg    string
	}{
		{"missing header", "", secret, body, "missing X-Hub-Signature-256"},
		{"no secret configured", good, "", body, "no secret configured"},
		{"sha1 signature", "sha1=" + strings.Repeat("a", 40), secret, body, "does not start with sha256="},
		{"not hex", "sha256=" + strings.Repeat("z", 64), secret, body, "not 32 hex-encoded bytes"},
		{"too short", good[:len(good)-2], secret, body, "not 32 hex-encoded bytes"},
		{"too long", good + "00", secret, body, "not 32 hex-encoded bytes"},
		{"wrong secret", sign(body, "other secret"), secret, body, "does not match"},
		{"body changed", good, secret, append([]byte(" "), body...), "does not match"},
		{"upper-case prefix", "SHA256=" + good[7:], secret, body, "does not start with sha256="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := headers("workflow_run", "d", tt.body)
			h.Set(HeaderSignature, tt.sig)
			ev, err := Decode(h, tt.body, tt.secret)
			if !errors.Is(err, source.ErrUnauthorized) || errors.Is(err, relay.ErrInvalid) {
				t.Fatalf("Decode = %+v, %v; want ErrUnauthorized, not ErrInvalid", ev, err)
			}
			if source.HTTPStatus(err) != http.StatusUnauthorized {
				t.Errorf("HTTPStatus(%v) = %d, want 401", err, source.HTTPStatus(err))
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Decode error = %q, want it to contain %q", err, tt.msg)
			}
			// No secret and no signature, ours or theirs, in the error.
			for _, s := range []string{secret, good[7:], tt.sig} {
				if len(s) > 8 && strings.Contains(err.Error(), s) {
					t.Errorf("Decode error %q leaks %q", err, s)
				}
			}
		})
	}
}

func TestDecodeReplay(t *testing.T) {
	t.Parallel()
	body := fixture(t, "workflow_run_completed_failure.json")
	const guid = "8f3e0b1a-0c5e-11ef-9a1d-3b2f1e0d9c8b"
	first, err := Decode(headers("workflow_run", guid, body), body, secret)
	if err != nil {
		t.Fatal(err)
	}
	// GitHub's redelivery (or a replay by whoever captured the request)
	// sends the same GUID, body and signature: same key, so the store
	// drops it.
	again, err := Decode(headers("workflow_run", guid, body), body, secret)
	if err != nil {
		t.Fatal(err)
	}
	if first.IdempotencyKey != again.IdempotencyKey {
		t.Errorf("replayed delivery: key %q, first %q; want equal", again.IdempotencyKey, first.IdempotencyKey)
	}
	// Another validly signed body under the same GUID dedupes too: the key
	// is the GUID alone (see the package documentation).
	other := []byte(strings.Replace(string(body), `"conclusion": "failure"`, `"conclusion": "success"`, 1))
	ev, err := Decode(headers("workflow_run", guid, other), other, secret)
	if err != nil {
		t.Fatal(err)
	}
	if ev.IdempotencyKey != first.IdempotencyKey {
		t.Errorf("same GUID, other body: key %q, want %q", ev.IdempotencyKey, first.IdempotencyKey)
	}
	// A new delivery of the same event has a new GUID, hence a new key.
	ev, err = Decode(headers("workflow_run", "another-guid", body), body, secret)
	if err != nil {
		t.Fatal(err)
	}
	if ev.IdempotencyKey == first.IdempotencyKey {
		t.Error("different GUIDs gave the same key")
	}
	// Without the header the key is a hash of the body: stable for equal
	// bodies, different for different ones.
	a, _ := Decode(headers("workflow_run", "", body), body, secret)
	b, _ := Decode(headers("workflow_run", "", body), body, secret)
	c, _ := Decode(headers("workflow_run", "", other), other, secret)
	if a.IdempotencyKey != b.IdempotencyKey || a.IdempotencyKey == c.IdempotencyKey || !strings.HasPrefix(a.IdempotencyKey, "github/sha256:") {
		t.Errorf("hash keys: %q, %q, %q; want the first two equal, the third different", a.IdempotencyKey, b.IdempotencyKey, c.IdempotencyKey)
	}
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, event, delivery string
		body                  string
		msg                   string
	}{
		{"not json", "workflow_run", "d", `{"action":`, "truncated JSON"},
		{"syntax error", "workflow_run", "d", `{"action" "completed"}`, "invalid JSON at byte"},
		{"trailing data", "workflow_run", "d", `{"action":"completed"} {}`, "unexpected data after"},
		{"wrong type", "workflow_run", "d", `{"action":"completed","workflow_run":{"id":"x"}}`, `field "workflow_run.id"`},
		{"no run", "workflow_run", "d", `{"action":"completed"}`, "workflow_run is missing"},
		{"no run id", "workflow_run", "d", `{"action":"completed","workflow_run":{"name":"CI"}}`, "workflow_run.id is missing"},
		{"no repository", "workflow_run", "d", `{"action":"completed","workflow_run":{"id":1}}`, "repository.full_name is missing"},
		{"no suite", "check_suite", "d", `{"action":"completed"}`, "check_suite is missing"},
		{"NUL in branch", "workflow_run", "d", `{"action":"completed","workflow_run":{"id":1,"head_branch":"a\u0000b"},"repository":{"full_name":"o/r"}}`, "head_branch contains a NUL"},
		{"missing event header", "", "d", `{}`, "missing X-GitHub-Event"},
		{"bad delivery header", "workflow_run", "bad\x01id", `{}`, "X-GitHub-Delivery holds a byte"},
		{"empty body", "workflow_run", "d", ``, "empty body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(tt.body)
			_, err := Decode(headers(tt.event, tt.delivery, body), body, secret)
			if !errors.Is(err, source.ErrMalformed) || !errors.Is(err, relay.ErrInvalid) {
				t.Fatalf("Decode error = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Decode error = %q, want it to contain %q", err, tt.msg)
			}
			if source.HTTPStatus(err) != http.StatusBadRequest {
				t.Errorf("HTTPStatus = %d, want 400", source.HTTPStatus(err))
			}
		})
	}
	big := make([]byte, source.MaxBodyBytes+1)
	if _, err := Decode(headers("workflow_run", "d", big), big, secret); !errors.Is(err, source.ErrMalformed) {
		t.Errorf("Decode(huge body) error = %v, want ErrMalformed", err)
	}
}

// TestVerifyIsConstantTime checks the structure of verify: the computed
// and received MACs are compared with hmac.Equal only, never with ==,
// bytes.Equal or a string comparison that stops at the first difference.
func TestVerifyIsConstantTime(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "github.go", nil, 0)
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
		t.Fatal("no func verify in github.go")
	}
	hmacEqual := 0
	ast.Inspect(verify.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok {
					switch id.Name + "." + sel.Sel.Name {
					case "hmac.Equal":
						hmacEqual++
					case "bytes.Equal", "strings.EqualFold", "strings.Compare", "bytes.Compare", "reflect.DeepEqual":
						t.Errorf("verify calls %s.%s, which is not constant-time", id.Name, sel.Sel.Name)
					}
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				for _, side := range []ast.Expr{n.X, n.Y} {
					if id, ok := side.(*ast.Ident); ok && (id.Name == "got" || id.Name == "hexSig") {
						t.Errorf("verify compares %s with %s", id.Name, n.Op)
					}
				}
			}
		}
		return true
	})
	if hmacEqual != 1 {
		t.Errorf("verify calls hmac.Equal %d times, want 1", hmacEqual)
	}
}

func FuzzDecode(f *testing.F) {
	for name, event := range map[string]string{
		"workflow_run_completed_failure.json": "workflow_run",
		"workflow_run_in_progress.json":       "workflow_run",
		"check_suite_completed_success.json":  "check_suite",
		"ping.json":                           "ping",
	} {
		f.Add(event, fixture(f, name), true)
	}
	f.Add("workflow_run", []byte(`{"action":"completed","workflow_run":{"id":1},"repository":{"full_name":"a/b"}}`), false)
	f.Fuzz(func(t *testing.T, event string, body []byte, signed bool) {
		h := http.Header{}
		h.Set(HeaderEvent, event)
		h.Set(HeaderDelivery, "d")
		if signed {
			h.Set(HeaderSignature, sign(body, secret))
		}
		ev, err := Decode(h, body, secret)
		if err != nil {
			if ev != nil {
				t.Fatalf("Decode returned an event with an error: %+v, %v", ev, err)
			}
			if !errors.Is(err, source.ErrUnauthorized) && !errors.Is(err, source.ErrMalformed) {
				t.Fatalf("Decode error %v is neither ErrUnauthorized nor ErrMalformed", err)
			}
			return
		}
		if !signed {
			t.Fatal("Decode accepted an unsigned body")
		}
		if !ev.Ignored && !ev.Ping && (ev.Data == nil || ev.IdempotencyKey == "") {
			t.Fatalf("Decode = %+v: a rendered event needs data and a key", ev)
		}
		// What templates see holds no control, bidi or line-breaking
		// character: every field is one line.
		if d, ok := ev.Data.(*Data); ok {
			if s := fmt.Sprintf("%+v", *d.Clean().(*Data)); strings.IndexFunc(s, clean.Forbidden) >= 0 {
				t.Fatalf("Clean() of %s left %q", body, s)
			}
		}
	})
}
