package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

// injectBug makes PostgreSQL refuse any delivery whose text mentions
// InjectedBug, with a constraint the store does not know of: a real
// database error that no retry cures, through the real handler and store.
const injectBug = `ALTER TABLE deliveries ADD CONSTRAINT injected_bug CHECK (text NOT LIKE '%InjectedBug%')`

// postWithID posts body to route with an X-Request-Id, when id is set.
func postWithID(t *testing.T, b testBundle, route, id string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/v1/webhooks/"+route, bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return response{}
	}
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return response{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Errorf("body is not JSON: %q", raw)
	}
	return out
}

// internalErrors reads relay_internal_errors_total{where}.
func internalErrors(t *testing.T, reg *prometheus.Registry, where string) float64 {
	t.Helper()
	// Gather goes on past a collector that fails (the deliveries count of
	// a handler without a database does).
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "relay_internal_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "where" && l.GetValue() == where {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("relay_internal_errors_total{where=%q} is not exported", where)
	return 0
}

// errorLogs returns the error-level log lines of the request id.
func errorLogs(t *testing.T, logs *relaytest.Buffer, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["level"] == "ERROR" && rec["request_id"] == id {
			out = append(out, rec)
		}
	}
	return out
}

// checkInternalAnswer checks a 500 tells the client nothing of the
// internals and no Retry-After, and points to the log by request id.
func checkInternalAnswer(t *testing.T, resp response, secrets ...string) string {
	t.Helper()
	if resp.status != http.StatusInternalServerError {
		t.Fatalf("status = %d %v, want 500", resp.status, resp.body)
	}
	if ra := resp.header.Get("Retry-After"); ra != "" {
		t.Errorf("a 500 with Retry-After %q: only unavailability asks for a retry later", ra)
	}
	id := resp.header.Get("X-Request-Id")
	msg, _ := resp.body["error"].(string)
	if id == "" || !strings.Contains(msg, "internal error") || !strings.Contains(msg, id) {
		t.Errorf("error = %q with X-Request-Id %q, want a generic internal error naming the request id", msg, id)
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("error = %q tells the client %q", msg, s)
		}
	}
	return id
}

func TestWebhookInternalErrorIs500Not503(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		breaks string // SQL that makes the store fail
		detail string // what the log says and the client must not see
		fine   bool   // whether other notifications are still stored
	}{
		{name: "a constraint the store does not expect", breaks: injectBug, detail: "injected_bug", fine: true},
		{
			// No SQLSTATE: pgx itself refuses to encode the values. Such
			// an error used to be taken for the database being unreachable.
			name:   "a column whose type changed under the store",
			breaks: `ALTER TABLE dedup_keys ALTER COLUMN operation_ids TYPE text`,
			detail: "unable to encode",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			if _, err := b.db.Pool().Exec(context.Background(), tt.breaks); err != nil {
				t.Fatal(err)
			}
			resp := postWithID(t, b, "prod", "client-trace-42", relaytest.Notification("InjectedBug", 1, "firing"))
			if id := checkInternalAnswer(t, resp, tt.detail, "SQLSTATE", "dedup_keys", "deliveries"); id != "client-trace-42" {
				t.Errorf("X-Request-Id = %q, want the client's own", id)
			}
			logged := errorLogs(t, b.logs, "client-trace-42")
			if len(logged) != 1 {
				t.Fatalf("%d error-level log lines for the request, want 1:\n%s", len(logged), b.logs)
			}
			if err, _ := logged[0]["err"].(string); !strings.Contains(err, tt.detail) || logged[0]["route"] != "prod" {
				t.Errorf("log line %v, want the detail (%s) and the route", logged[0], tt.detail)
			}
			if got := internalErrors(t, b.reg, "ingest"); got != 1 {
				t.Errorf("relay_internal_errors_total{where=ingest} = %v, want 1", got)
			}
			if got := testutilCounter(t, b, "prod", "error"); got != 1 {
				t.Errorf("relay_webhooks_received_total{route=prod,result=error} = %v, want 1", got)
			}
			if got := testutilCounter(t, b, "prod", "unavailable"); got != 0 {
				t.Errorf("relay_webhooks_received_total{route=prod,result=unavailable} = %v, want 0", got)
			}
			if n := b.deliveryCount(t); n != 0 {
				t.Errorf("%d deliveries stored, want 0", n)
			}
			if !tt.fine {
				return
			}
			resp = b.post(t, "prod", relaytest.Notification("Fine", 1, "firing"))
			if resp.status != http.StatusAccepted {
				t.Errorf("POST after the internal error = %d %v, want 202", resp.status, resp.body)
			}
			if resp.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on a response")
			}
		})
	}
}

func TestWebhookMisconfigurationIs500(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *ingest.Config) {
		r := *c.Routes["prod"]
		r.Name, r.Template = "misconfigured", "no-such-template"
		c.Routes["misconfigured"] = &r
	})
	id := checkInternalAnswer(t, b.post(t, "misconfigured", relaytest.Notification("X", 1, "firing")))
	if len(errorLogs(t, b.logs, id)) != 1 {
		t.Errorf("no error-level log line for request %s:\n%s", id, b.logs)
	}
	if got := internalErrors(t, b.reg, "ingest"); got != 1 {
		t.Errorf("relay_internal_errors_total{where=ingest} = %v, want 1", got)
	}
}

func TestWebhookPanicIs500(t *testing.T) {
	t.Parallel()
	// A configuration built without its template engine: rendering panics.
	b := setup(t, func(c *ingest.Config) { c.Engine = nil })
	id := checkInternalAnswer(t, b.post(t, "prod", relaytest.Notification("X", 1, "firing")))
	logged := errorLogs(t, b.logs, id)
	if len(logged) != 1 {
		t.Fatalf("%d error-level log lines for request %s, want 1:\n%s", len(logged), id, b.logs)
	}
	if stack, _ := logged[0]["stack"].(string); !strings.Contains(stack, "ingest.(*Config).Prepare") {
		t.Errorf("log line %v, want the stack of the panic", logged[0])
	}
	if got := internalErrors(t, b.reg, "ingest"); got != 1 {
		t.Errorf("relay_internal_errors_total{where=ingest} = %v, want 1", got)
	}
	if got := testutilCounter(t, b, "prod", "error"); got != 1 {
		t.Errorf("relay_webhooks_received_total{route=prod,result=error} = %v, want 1", got)
	}
}

func TestAuditAPIPanicIs500(t *testing.T) {
	t.Parallel()
	// A handler built without its database: the audit API panics. The
	// recovering middleware answers 500 instead of dropping the connection.
	logs := &relaytest.Buffer{}
	reg := prometheus.NewRegistry()
	h := ingest.New(&ingest.Config{APIToken: apiToken}, ingest.Options{
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registerer: reg, Gatherer: reg,
	})
	h.Open()
	srv := httptest.NewServer(h.Echo())
	t.Cleanup(srv.Close)
	b := testBundle{srv: srv, reg: reg, logs: logs}
	id := checkInternalAnswer(t, b.do(t, http.MethodGet, "/v1/deliveries", "", apiToken, nil))
	if logged := errorLogs(t, logs, id); len(logged) != 1 || logged[0]["stack"] == nil {
		t.Errorf("error-level log lines for request %s: %v, want one with the stack", id, logged)
	}
	if got := internalErrors(t, reg, "api"); got != 1 {
		t.Errorf("relay_internal_errors_total{where=api} = %v, want 1", got)
	}
}

// TestWebhookBatchWithABugAnswersOnlyItsCulprit500: when one request of a
// group commit hits an internal error, the others of its batch are still
// committed and answered 2xx.
func TestWebhookBatchWithABugAnswersOnlyItsCulprit500(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var writes []int
	b := setupWith(t, bundleOptions{
		store: store.Options{OpTimeout: time.Minute, OnIngestCommit: func(requests int, _ time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			writes = append(writes, requests)
		}},
		requestTimeout: time.Minute,
	}, nil)
	ctx := context.Background()
	pool := b.db.Pool()
	if _, err := pool.Exec(ctx, injectBug); err != nil {
		t.Fatal(err)
	}
	lockWaiters := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
		}
	}
	// Writes wait for this lock. The first request's write waits alone;
	// the other four queue behind it until, at four waiting, the store
	// starts a second group commit beside it with all four, which waits
	// too. Once two writes wait, the four are one batch.
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, `LOCK TABLE dedup_keys IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	groups := []string{"First", "Second", "InjectedBug", "Third", "Fourth"}
	resps := make([]response, len(groups))
	var wg sync.WaitGroup
	send := func(i int) {
		wg.Go(func() { resps[i] = postWithID(t, b, "prod", "", relaytest.Notification(groups[i], 1, "firing")) })
	}
	send(0)
	waitFor("the first write to wait for the lock", func() bool { return lockWaiters() == 1 })
	for i := 1; i < len(groups); i++ {
		send(i)
	}
	waitFor("the batch of the four others to wait for the lock", func() bool { return lockWaiters() == 2 })
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for i, g := range groups {
		if g == "InjectedBug" {
			checkInternalAnswer(t, resps[i], "injected_bug")
			continue
		}
		if resps[i].status != http.StatusAccepted {
			t.Errorf("POST %s = %d %v, want 202: one bad request of a batch must not fail the others", g, resps[i].status, resps[i].body)
		}
	}
	mu.Lock()
	if !slices.Contains(writes, 4) {
		t.Errorf("group commits of %v requests, want one of 4: the test did not form the batch it is about", writes)
	}
	mu.Unlock()
	if n := b.deliveryCount(t); n != 8 {
		t.Errorf("%d deliveries stored, want 8 (four notifications, two conversations each)", n)
	}
	if got := testutil.ToFloat64(counter(t, b.reg, "prod", "accepted")); got != 4 {
		t.Errorf("relay_webhooks_received_total{route=prod,result=accepted} = %v, want 4", got)
	}
}
