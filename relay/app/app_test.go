package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/relaytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const configYAML = `
conversations:
  oncall: { to: "sip:oncall@contoso.com", subject: "Production alerts" }
  dba:    { to: "sip:dba@contoso.com" }
routes:
  - name: prod
    format: alertmanager
    conversations: [oncall, dba]
  - name: custom
    format: alertmanager
    conversations: [oncall]
    template: custom.tmpl
`

func loadConfig(t *testing.T, dbURL string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "custom.tmpl"), []byte(`{{ .Status | toUpper }}: {{ len .Alerts }} alerts`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": dbURL, "RELAY_API_TOKEN": "api-token", "RELAY_ROUTE_PROD_TOKEN": "prod-token"}
	cfg, err := config.Parse([]byte(configYAML), dir, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	return cfg
}

// TestRunEndToEnd boots the whole relay on an empty database: it migrates,
// takes a webhook, shows it in the audit API and shuts down cleanly.
func TestRunEndToEnd(t *testing.T) {
	dbURL := relaytest.NewEmptyDatabase(t)
	cfg := loadConfig(t, dbURL)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &relaytest.Buffer{}
	go func() {
		done <- app.Run(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)), app.Options{Listener: ln})
	}()
	relaytest.WaitReady(t, base)
	// The route without a token is a warning at startup; prod has one.
	if l := logs.String(); !strings.Contains(l, `"warning":"routes \"custom\" has no bearer token`) ||
		strings.Contains(l, `routes \"prod\" has no bearer token`) {
		t.Errorf("startup log: want a warning about route custom's missing token, none about prod:\n%s", l)
	}

	post := func(route, token string, body []byte) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/webhooks/"+route, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, _ := post("prod", "wrong", relaytest.Notification("HighCPU", 2, "firing")); status != http.StatusUnauthorized {
		t.Errorf("POST with wrong token = %d, want 401", status)
	}
	status, body := post("prod", "prod-token", relaytest.Notification("HighCPU", 2, "firing"))
	if status != http.StatusAccepted {
		t.Fatalf("POST = %d %v, want 202", status, body)
	}
	ids := body["operationIds"].([]any)
	if len(ids) != 2 {
		t.Fatalf("operationIds = %v, want one per conversation", ids)
	}
	status, body = post("custom", "", relaytest.Notification("Disk", 3, "firing"))
	if status != http.StatusAccepted {
		t.Fatalf("POST custom = %d %v", status, body)
	}

	req, _ := http.NewRequest(http.MethodGet, base+"/v1/deliveries/"+body["operationIds"].([]any)[0].(string), nil)
	req.Header.Set("Authorization", "Bearer api-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if d["text"] != "FIRING: 3 alerts" || d["state"] != "pending" {
		t.Errorf("delivery = text %q state %v, want the custom template's text, pending", d["text"], d["state"])
	}

	// Two webhooks were written, each in a group commit of its own or
	// together.
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"relay_ingest_commit_requests_sum 2", "relay_ingest_commit_duration_seconds_count "} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after shutdown, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestCheckConfig(t *testing.T) {
	cfg := loadConfig(t, "")
	if err := app.CheckConfig(cfg); err != nil {
		t.Errorf("CheckConfig(good) = %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "custom.tmpl"), []byte(`{{ index .Alerts 7 }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad, err := config.Parse([]byte(configYAML), dir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	err = app.CheckConfig(bad)
	if err == nil || !strings.Contains(err.Error(), `routes "custom"`) {
		t.Errorf("CheckConfig(template failing on samples) = %v, want an error naming the route", err)
	}
}

// TestLateAnswersAreWritten: a webhook answered only at request_timeout
// (its commit waits for a lock) and one whose body stops halfway until
// read_timeout are both still answered, 503 with Retry-After so that the
// sender retries, rather than left with a closed connection.
func TestLateAnswersAreWritten(t *testing.T) {
	dbURL := relaytest.NewDatabase(t)
	r := startRelay(t, dbURL, `
ingest: {read_timeout: 1s, request_timeout: 1s, write_timeout: 6s}
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - name: prod
    format: alertmanager
    conversations: [oncall]
`)
	ctx := context.Background()
	body := relaytest.Notification("Late", 2, "firing")

	lock, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE dedup_keys IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(r.base+"/v1/webhooks/prod", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST while the commit waits for a lock: %v, want an answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST while the commit waits for a lock = %d (Retry-After %q), want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(r.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/webhooks/prod HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	if _, err := conn.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("body stopped halfway: %v, want an answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("body stopped halfway = %d (Retry-After %q), want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
