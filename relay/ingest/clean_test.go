package ingest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/render"
)

// The hostile values of issue #13: a label that forges a resolved line,
// a right-to-left override with a BEL, ESC, a bare CR, U+2028 and U+2029,
// and a javascript: link.
const (
	forgedLine = "api-1\n[RESOLVED:1] AllGood"
	reversed   = "evil\u202egnp\a"
	controls   = "\x1b[31mred\rover\u2028x\u2029"
	scriptURL  = "javascript:alert(1)"
)

// TestPrepareCleansHostileValues posts the hostile values in every format
// through Prepare, the path from request body to stored message text, and
// checks each text: every hostile character shows as an escape, no value
// starts a line, and the javascript: link is gone.
func TestPrepareCleansHostileValues(t *testing.T) {
	t.Parallel()
	eng, err := render.New(render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	convs := map[string][]relay.Target{"ci": {{To: "sip:ci@contoso.com"}}}
	cfg := &ingest.Config{Engine: eng, Routes: map[string]*ingest.Route{}}
	for _, f := range []string{"alertmanager", "github", "gitlab", "generic"} {
		cfg.Routes[f] = &ingest.Route{Name: f, Format: f, Template: f, Secret: ghSecret,
			Defaults: []string{"ci"}, Conversations: convs}
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t0 := time.Date(2026, 11, 27, 3, 2, 5, 0, time.UTC)

	am := alertmanager.Message{
		Version: "4", GroupKey: "{}:{}", Status: "firing", Receiver: "oncall", ExternalURL: scriptURL,
		GroupLabels:  alertmanager.KV{"alertname": "HighCPU"},
		CommonLabels: alertmanager.KV{"alertname": "HighCPU"},
		Alerts: alertmanager.Alerts{
			{Status: "firing", StartsAt: t0, GeneratorURL: scriptURL,
				Labels:      alertmanager.KV{"alertname": "HighCPU", "instance": forgedLine, "job": reversed},
				Annotations: alertmanager.KV{"summary": controls, "runbook_url": scriptURL}},
			{Status: "firing", StartsAt: t0, Labels: alertmanager.KV{"alertname": "HighCPU", "instance": "web-2"}},
		},
	}
	gh := map[string]any{
		"action": "completed",
		"workflow_run": map[string]any{
			"id": 1, "name": controls, "display_title": reversed, "head_branch": forgedLine, "head_sha": "9f2c4e1b",
			"run_number": 7, "status": "completed", "conclusion": "failure", "html_url": scriptURL, "event": "push",
			"triggering_actor": map[string]any{"login": reversed},
		},
		"repository": map[string]any{"full_name": "o/r", "html_url": scriptURL},
	}
	gl := map[string]any{
		"object_kind": "pipeline",
		"object_attributes": map[string]any{
			"id": 31415, "ref": forgedLine, "sha": "bcbb5ec3", "status": "failed", "source": controls, "name": reversed,
		},
		"project": map[string]any{"path_with_namespace": "g/p", "web_url": scriptURL},
		"user":    map[string]any{"username": reversed},
		"builds": []any{map[string]any{"id": 9, "name": forgedLine, "stage": controls, "status": "failed",
			"failure_reason": reversed}},
	}
	generic := map[string]any{"title": forgedLine, "status": reversed, "message": controls, "url": scriptURL}

	tests := []struct {
		route  string
		header http.Header
		body   []byte
	}{
		{"alertmanager", nil, mustJSON(am)},
		{"github", http.Header{"X-Github-Event": {"workflow_run"}}, mustJSON(gh)},
		{"gitlab", http.Header{"X-Gitlab-Event": {"Pipeline Hook"}, "X-Gitlab-Token": {ghSecret}}, mustJSON(gl)},
		{"generic", nil, mustJSON(generic)},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			t.Parallel()
			h := tt.header
			if tt.route == "github" {
				h = h.Clone()
				h.Set("X-Hub-Signature-256", sign(tt.body, ghSecret))
			}
			prep, err := cfg.Prepare(cfg.Routes[tt.route], h, tt.body)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if prep.Notification == nil || len(prep.Notification.Messages) == 0 {
				t.Fatalf("Prepare = %+v, want messages", prep)
			}
			for _, m := range prep.Notification.Messages {
				checkHostileText(t, m.Text)
			}
		})
	}
}

func checkHostileText(t *testing.T, text string) {
	t.Helper()
	for _, r := range text {
		if clean.Forbidden(r) && r != '\n' && r != '\t' {
			t.Errorf("message holds %U:\n%s", r, text)
			break
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "[RESOLVED:1]") {
			t.Errorf("a value forged a line:\n%s", text)
		}
	}
	if strings.Contains(text, "javascript:") || !strings.Contains(text, clean.RemovedLink) {
		t.Errorf("the javascript: link was not replaced by %q:\n%s", clean.RemovedLink, text)
	}
	for _, want := range []string{"<U+000A>[RESOLVED:1] AllGood", "<U+202E>", "<U+0007>", "<U+001B>", "<U+000D>", "<U+2028>", "<U+2029>"} {
		if !strings.Contains(text, want) {
			t.Errorf("message lacks %q:\n%s", want, text)
		}
	}
}
