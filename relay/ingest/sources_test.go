package ingest_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"testing"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/match"
	"github.com/skype-relay/relay/relay/relaytest"
)

const ghSecret = "gh-secret-41f0"

func withSources(c *ingest.Config) {
	convs := map[string][]relay.Target{
		"oncall": {{To: "sip:oncall@contoso.com"}},
		"dba":    {{To: "sip:dba1@contoso.com"}, {To: "sip:dba2@contoso.com"}},
		"ci":     {{To: "sip:ci@contoso.com"}},
	}
	critical, _ := match.ParseStrings([]string{`severity=~"critical|page"`})
	db1, _ := match.ParseStrings([]string{`instance=~"db-1\\..*"`})
	c.Routes["routed"] = &ingest.Route{Name: "routed", Format: "alertmanager", Template: "alertmanager",
		Rules: []match.Rule{
			{Matchers: db1, Conversations: []string{"dba"}, Continue: true},
			{Matchers: critical, Conversations: []string{"oncall"}},
		},
		Defaults: []string{"ci"}, Conversations: convs, SharedText: true}
	c.Routes["split"] = &ingest.Route{Name: "split", Format: "alertmanager", Template: "alertmanager",
		Defaults: []string{"oncall"}, Conversations: convs, SplitStatus: true}
	c.Routes["each"] = &ingest.Route{Name: "each", Format: "alertmanager", Template: "alertmanager",
		Defaults: []string{"oncall"}, Conversations: convs, PerAlert: true}
	c.Routes["gh"] = &ingest.Route{Name: "gh", Format: "github", Template: "github", Secret: ghSecret,
		Defaults: []string{"ci"}, Conversations: convs}
	c.Routes["gl"] = &ingest.Route{Name: "gl", Format: "gitlab", Template: "gitlab", Secret: ghSecret,
		Defaults: []string{"ci"}, Conversations: convs}
	c.Routes["any"] = &ingest.Route{Name: "any", Format: "generic", Template: "generic",
		Defaults: []string{"ci"}, Conversations: convs}
}

func recipients(t *testing.T, b testBundle, ids []any) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, id := range ids {
		var r string
		if err := b.db.Pool().QueryRow(t.Context(), `SELECT recipient FROM deliveries WHERE operation_id = $1`, id).Scan(&r); err != nil {
			t.Fatal(err)
		}
		out[r]++
	}
	return out
}

func TestRoutingRulesPickConversations(t *testing.T) {
	t.Parallel()
	b := setup(t, withSources)
	// Three alerts: db-1 (critical), db-2 (critical), db-3 (critical).
	// db-1 goes to dba (continue) and oncall; the others to oncall.
	resp := b.post(t, "routed", relaytest.Notification("HighCPU", 3, "firing"))
	if resp.status != http.StatusAccepted {
		t.Fatalf("POST = %d %v", resp.status, resp.body)
	}
	got := recipients(t, b, resp.body["operationIds"].([]any))
	want := map[string]int{"sip:dba1@contoso.com": 1, "sip:dba2@contoso.com": 1, "sip:oncall@contoso.com": 1}
	if len(got) != len(want) || got["sip:dba1@contoso.com"] != 1 || got["sip:oncall@contoso.com"] != 1 {
		t.Errorf("deliveries per recipient = %v, want %v (ci gets nothing: every alert matched a rule)", got, want)
	}
}

func TestSplitStatusAndPerAlert(t *testing.T) {
	t.Parallel()
	b := setup(t, withSources)
	mixed := bytes.Replace(relaytest.Notification("Mixed", 3, "firing"), []byte(`"status":"firing","labels":{"alertname":"Mixed","env":"prod","instance":"db-2`),
		[]byte(`"status":"resolved","labels":{"alertname":"Mixed","env":"prod","instance":"db-2`), 1)
	if bytes.Equal(mixed, relaytest.Notification("Mixed", 3, "firing")) {
		t.Fatal("fixture edit did not apply")
	}
	for route, want := range map[string]int{"split": 2, "each": 3, "prod": 2} {
		resp := b.post(t, route, mixed)
		if resp.status != http.StatusAccepted {
			t.Fatalf("POST %s = %d %v", route, resp.status, resp.body)
		}
		if n := len(resp.body["operationIds"].([]any)); n != want {
			t.Errorf("route %s made %d deliveries, want %d", route, n, want)
		}
		// The resolved part of a group that still fires must not be able
		// to supersede the group's firing messages.
		var ids []string
		for _, id := range resp.body["operationIds"].([]any) {
			ids = append(ids, id.(string))
		}
		rows, err := b.db.Pool().Query(t.Context(), `SELECT status FROM deliveries WHERE operation_id = ANY($1)`, ids)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var st string
			_ = rows.Scan(&st)
			if st == "resolved" {
				t.Errorf("route %s queued a delivery with supersession status resolved for a group that still fires", route)
			}
		}
		rows.Close()
	}
}

func githubRequest(t *testing.T, b testBundle, event, delivery, sig string, body []byte) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/v1/webhooks/gh", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	return send(t, req)
}

func sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestGitHubWebhooks(t *testing.T) {
	t.Parallel()
	b := setup(t, withSources)
	run, err := os.ReadFile("../source/github/testdata/workflow_run_completed_failure.json")
	if err != nil {
		t.Fatal(err)
	}
	inProgress, _ := os.ReadFile("../source/github/testdata/workflow_run_in_progress.json")
	ping, _ := os.ReadFile("../source/github/testdata/ping.json")

	if r := githubRequest(t, b, "workflow_run", "d-1", "", run); r.status != http.StatusUnauthorized {
		t.Errorf("unsigned = %d, want 401", r.status)
	}
	if r := githubRequest(t, b, "workflow_run", "d-1", sign(run, "wrong"), run); r.status != http.StatusUnauthorized {
		t.Errorf("wrong signature = %d, want 401", r.status)
	}
	tampered := bytes.Replace(run, []byte("failure"), []byte("success"), 1)
	if r := githubRequest(t, b, "workflow_run", "d-1", sign(run, ghSecret), tampered); r.status != http.StatusUnauthorized {
		t.Errorf("tampered body = %d, want 401", r.status)
	}
	if r := githubRequest(t, b, "ping", "d-0", sign(ping, ghSecret), ping); r.status != http.StatusOK || r.body["status"] != "pong" {
		t.Errorf("ping = %d %v, want 200 pong", r.status, r.body)
	}
	if r := githubRequest(t, b, "workflow_run", "d-2", sign(inProgress, ghSecret), inProgress); r.status != http.StatusAccepted || r.body["status"] != "ignored" {
		t.Errorf("in-progress run = %d %v, want 202 ignored", r.status, r.body)
	}
	if r := githubRequest(t, b, "issues", "d-3", sign(run, ghSecret), run); r.status != http.StatusAccepted || r.body["status"] != "ignored" {
		t.Errorf("unsupported event = %d %v, want 202 ignored", r.status, r.body)
	}
	first := githubRequest(t, b, "workflow_run", "d-4", sign(run, ghSecret), run)
	if first.status != http.StatusAccepted || first.body["duplicate"] != false {
		t.Fatalf("signed run = %d %v, want 202", first.status, first.body)
	}
	// A replay (GitHub's redelivery, or an attacker's copy) of the same
	// delivery is a duplicate: nothing new is sent.
	replay := githubRequest(t, b, "workflow_run", "d-4", sign(run, ghSecret), run)
	if replay.status != http.StatusOK || replay.body["duplicate"] != true {
		t.Errorf("replay = %d %v, want 200 duplicate", replay.status, replay.body)
	}
	if n := b.deliveryCount(t); n != 1 {
		t.Errorf("%d deliveries stored, want 1", n)
	}
	if got := testutilCounter(t, b, "gh", "ignored"); got != 2 {
		t.Errorf("ignored counter = %v, want 2", got)
	}
}

func TestGitLabAndGenericWebhooks(t *testing.T) {
	t.Parallel()
	b := setup(t, withSources)
	pipeline, err := os.ReadFile("../source/gitlab/testdata/pipeline_failed.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(route string, h map[string]string, body []byte) response {
		req, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/v1/webhooks/"+route, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		return send(t, req)
	}
	if r := post("gl", map[string]string{"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": "nope"}, pipeline); r.status != http.StatusUnauthorized {
		t.Errorf("wrong gitlab token = %d, want 401", r.status)
	}
	if r := post("gl", map[string]string{"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": ghSecret}, pipeline); r.status != http.StatusAccepted {
		t.Errorf("gitlab pipeline = %d %v, want 202", r.status, r.body)
	}
	body := []byte(`{"title":"Deploy finished","status":"success"}`)
	first := post("any", map[string]string{"Idempotency-Key": "deploy-42"}, body)
	retry := post("any", map[string]string{"Idempotency-Key": "deploy-42"}, body)
	if first.status != http.StatusAccepted || retry.status != http.StatusOK || retry.body["duplicate"] != true {
		t.Errorf("generic retry with the same Idempotency-Key = %d then %d %v, want 202 then 200 duplicate", first.status, retry.status, retry.body)
	}
	// The same key on other content is not silently dropped.
	other := post("any", map[string]string{"Idempotency-Key": "deploy-42"}, []byte(`{"title":"Deploy failed","status":"failure"}`))
	if other.status != http.StatusAccepted || other.body["duplicate"] != false {
		t.Errorf("same Idempotency-Key, other content = %d %v, want 202 and a new delivery", other.status, other.body)
	}
	if r := post("any", nil, []byte(`[1,2,3]`)); r.status != http.StatusBadRequest {
		t.Errorf("generic array = %d, want 400", r.status)
	}
}

func send(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := response{status: resp.StatusCode, header: resp.Header}
	_ = jsonDecode(resp, &out.body)
	return out
}
