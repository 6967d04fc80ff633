package ingest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/relaytest"
)

func TestWebhookStatusCodes(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	good := relaytest.Notification("HighCPU", 3, "firing")
	wrongVersion := bytes.Replace(good, []byte(`"version":"4"`), []byte(`"version":"3"`), 1)
	tests := []struct {
		name        string
		route       string
		contentType string
		token       string
		body        []byte
		wantStatus  int
		wantError   string
	}{
		{name: "accepted", route: "prod", body: good, wantStatus: http.StatusAccepted},
		{name: "charset parameter is fine", route: "prod", contentType: "application/json; charset=utf-8",
			body: relaytest.Notification("Disk", 1, "firing"), wantStatus: http.StatusAccepted},
		{name: "malformed JSON", route: "prod", body: []byte(`{"version":"4",`), wantStatus: 400, wantError: "truncated JSON"},
		{name: "not an object", route: "prod", body: []byte(`[1,2]`), wantStatus: 400, wantError: "expected a JSON object"},
		{name: "trailing garbage", route: "prod", body: append(append([]byte{}, good...), []byte(`{}`)...), wantStatus: 400, wantError: "after the JSON object"},
		{name: "wrong version", route: "prod", body: wrongVersion, wantStatus: 400, wantError: `version is "3"`},
		{name: "empty body", route: "prod", body: nil, wantStatus: 400, wantError: "empty body"},
		{name: "no alerts", route: "prod", body: []byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[]}`), wantStatus: 400, wantError: "alerts is empty"},
		{name: "NUL in a label", route: "prod", body: []byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","labels":{"a":"x\u0000y"},"startsAt":"2026-11-27T03:00:00Z"}]}`), wantStatus: 400, wantError: "NUL"},
		{name: "unknown route", route: "nope", body: good, wantStatus: 404, wantError: `no route named "nope"`},
		{name: "missing token", route: "secured", body: good, wantStatus: 401, wantError: "bearer token"},
		{name: "wrong token", route: "secured", token: "guess", body: good, wantStatus: 401, wantError: "bearer token"},
		{name: "right token", route: "secured", token: routeToken, body: relaytest.Notification("Mem", 1, "firing"), wantStatus: http.StatusAccepted},
		{name: "too large", route: "prod", body: relaytest.Notification("Big", 200, "firing"), wantStatus: 413, wantError: "larger than 65536 bytes"},
		{name: "form content type", route: "prod", contentType: "application/x-www-form-urlencoded", body: good, wantStatus: 415, wantError: "application/json"},
		{name: "no content type", route: "prod", contentType: "-", body: good, wantStatus: 415, wantError: "application/json"},
		{name: "template failure", route: "broken", body: good, wantStatus: 422, wantError: `render template "broken"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			resp := b.do(t, http.MethodPost, "/v1/webhooks/"+tt.route, ct, tt.token, tt.body)
			if resp.status != tt.wantStatus {
				t.Fatalf("POST /v1/webhooks/%s = %d %v, want %d", tt.route, resp.status, resp.body, tt.wantStatus)
			}
			if tt.wantError != "" {
				msg, _ := resp.body["error"].(string)
				if !strings.Contains(msg, tt.wantError) {
					t.Errorf("error = %q, want it to mention %q", msg, tt.wantError)
				}
			} else if ids, _ := resp.body["operationIds"].([]any); len(ids) == 0 {
				t.Errorf("accepted response %v lists no operationIds", resp.body)
			}
		})
	}
	if got := testutil.ToFloat64(counter(t, b.reg, "prod", "bad_request")); got != 7 {
		t.Errorf("relay_webhooks_received_total{route=prod,result=bad_request} = %v, want 7", got)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, route, result string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "relay_webhooks_received_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["route"] == route && labels["result"] == result {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
				}
			}
		}
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestWebhookRetryIsDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := relaytest.Notification("HighCPU", 2, "firing")
	first := b.post(t, "prod", body)
	if first.status != http.StatusAccepted || first.body["duplicate"] != false {
		t.Fatalf("first POST = %d %v, want 202 not duplicate", first.status, first.body)
	}
	// A retry, and an HA peer's twin that disagrees on endsAt.
	twin := bytes.ReplaceAll(body, []byte(`"endsAt":"0001-01-01T00:00:00Z"`), []byte(`"endsAt":"2026-11-27T03:20:00Z"`))
	for _, again := range [][]byte{body, twin} {
		resp := b.post(t, "prod", again)
		if resp.status != http.StatusOK || resp.body["duplicate"] != true {
			t.Fatalf("repeat POST = %d %v, want 200 duplicate", resp.status, resp.body)
		}
		if !equalJSON(resp.body["operationIds"], first.body["operationIds"]) {
			t.Errorf("repeat operationIds = %v, want the original %v", resp.body["operationIds"], first.body["operationIds"])
		}
	}
	if n := b.deliveryCount(t); n != 2 {
		t.Errorf("%d deliveries stored, want 2 (one per conversation)", n)
	}
	// The same group resolving is new content.
	if resp := b.post(t, "prod", relaytest.Notification("HighCPU", 2, "resolved")); resp.status != http.StatusAccepted {
		t.Errorf("resolved POST = %d %v, want 202", resp.status, resp.body)
	}
	// The audit shows how often the duplicate came.
	id := first.body["operationIds"].([]any)[0].(string)
	d := b.do(t, http.MethodGet, "/v1/deliveries/"+id, "", apiToken, nil)
	if d.status != http.StatusOK || d.body["duplicates"] != float64(2) {
		t.Errorf("GET delivery = %d duplicates=%v, want 200 duplicates=2", d.status, d.body["duplicates"])
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestWebhookConcurrentTwinsOverHTTP(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := relaytest.Notification("Twins", 4, "firing")
	const twins = 12
	var wg sync.WaitGroup
	statuses := make([]int, twins)
	start := make(chan struct{})
	for i := range twins {
		wg.Go(func() {
			<-start
			resp, err := http.Post(b.srv.URL+"/v1/webhooks/prod", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case http.StatusAccepted:
			created++
		case http.StatusOK:
		default:
			t.Errorf("twin got status %d, want 200 or 202", s)
		}
	}
	if created != 1 {
		t.Errorf("%d twins answered 202 (created), want exactly 1", created)
	}
	if n := b.deliveryCount(t); n != 2 {
		t.Errorf("%d deliveries stored, want 2", n)
	}
}

func TestWebhookTemplateFailureWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	// "broken" renders for oncall and fails for dba: nothing may be stored.
	resp := b.post(t, "broken", relaytest.Notification("HighCPU", 1, "firing"))
	if resp.status != http.StatusUnprocessableEntity {
		t.Fatalf("POST = %d %v, want 422", resp.status, resp.body)
	}
	if n := b.deliveryCount(t); n != 0 {
		t.Errorf("%d deliveries stored after a failed render, want 0", n)
	}
}

func TestWebhookDatabaseDownIs503ThenRecovers(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if resp := b.post(t, "prod", relaytest.Notification("Before", 1, "firing")); resp.status != http.StatusAccepted {
		t.Fatalf("POST before outage = %d %v", resp.status, resp.body)
	}
	b.proxy.Down()
	resp := b.post(t, "prod", relaytest.Notification("During", 1, "firing"))
	if resp.status != http.StatusServiceUnavailable {
		t.Fatalf("POST during outage = %d %v, want 503", resp.status, resp.body)
	}
	if resp.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	b.proxy.Up()
	// The pool reconnects by itself; Alertmanager's retry then succeeds.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp = b.post(t, "prod", relaytest.Notification("During", 1, "firing"))
		if resp.status == http.StatusAccepted || resp.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST after outage still %d %v", resp.status, resp.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := b.deliveryCount(t); n != 4 {
		t.Errorf("%d deliveries stored, want 4 (two notifications, two conversations)", n)
	}
}

func TestAuditAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var ids []string
	for _, g := range []string{"A", "B", "C"} {
		resp := b.post(t, "prod", relaytest.Notification(g, 1, "firing"))
		if resp.status != http.StatusAccepted {
			t.Fatalf("POST = %d %v", resp.status, resp.body)
		}
		for _, id := range resp.body["operationIds"].([]any) {
			ids = append(ids, id.(string))
		}
	}
	if r := b.do(t, http.MethodGet, "/v1/deliveries", "", "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET without token = %d, want 401", r.status)
	}
	if r := b.do(t, http.MethodGet, "/v1/deliveries", "", "wrong", nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET with wrong token = %d, want 401", r.status)
	}

	// Page through everything, two at a time, newest first.
	var seen []string
	cursor := ""
	for page := 0; page < 10; page++ {
		path := "/v1/deliveries?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := b.do(t, http.MethodGet, path, "", apiToken, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s = %d %v", path, r.status, r.body)
		}
		for _, d := range r.body["deliveries"].([]any) {
			seen = append(seen, d.(map[string]any)["operationId"].(string))
		}
		next, _ := r.body["nextCursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != len(ids) {
		t.Fatalf("paged through %d deliveries, want %d", len(seen), len(ids))
	}
	// Newest first: the last notification's deliveries come first.
	if seen[0] != ids[len(ids)-1] && seen[0] != ids[len(ids)-2] {
		t.Errorf("first listed %s, want one of the newest notification's %v", seen[0], ids[len(ids)-2:])
	}

	r := b.do(t, http.MethodGet, "/v1/deliveries?conversation=dba&state=pending", "", apiToken, nil)
	if got := len(r.body["deliveries"].([]any)); r.status != http.StatusOK || got != 3 {
		t.Errorf("filter conversation=dba = %d with %d deliveries, want 200 with 3", r.status, got)
	}
	r = b.do(t, http.MethodGet, "/v1/deliveries?state=delivered", "", apiToken, nil)
	if got := len(r.body["deliveries"].([]any)); got != 0 {
		t.Errorf("filter state=delivered = %d deliveries, want 0", got)
	}
	r = b.do(t, http.MethodGet, "/v1/deliveries?alertname=B", "", apiToken, nil)
	if list := r.body["deliveries"].([]any); len(list) != 2 {
		t.Errorf("filter alertname=B = %d deliveries, want 2", len(list))
	} else {
		d := list[0].(map[string]any)
		if d["alertname"] != "B" || d["groupStatus"] != "firing" || d["receiver"] != "relay" {
			t.Errorf("audit columns of a listed delivery: alertname %v, groupStatus %v, receiver %v; want B, firing, relay",
				d["alertname"], d["groupStatus"], d["receiver"])
		}
	}
	r = b.do(t, http.MethodGet, "/v1/deliveries?since=2999-01-01T00:00:00Z", "", apiToken, nil)
	if got := len(r.body["deliveries"].([]any)); got != 0 {
		t.Errorf("filter since the future = %d deliveries, want 0", got)
	}
	for _, bad := range []string{"state=lost", "since=yesterday", "limit=0", "limit=9999", "cursor=%21%21", "colour=red"} {
		if r := b.do(t, http.MethodGet, "/v1/deliveries?"+bad, "", apiToken, nil); r.status != http.StatusBadRequest {
			t.Errorf("GET ?%s = %d, want 400", bad, r.status)
		}
	}

	d := b.do(t, http.MethodGet, "/v1/deliveries/"+ids[0], "", apiToken, nil)
	if d.status != http.StatusOK {
		t.Fatalf("GET delivery = %d %v", d.status, d.body)
	}
	for _, key := range []string{"text", "payload", "dedupKey", "attemptLog", "duplicates", "state", "route", "conversation"} {
		if _, ok := d.body[key]; !ok {
			t.Errorf("delivery detail lacks %q: %v", key, d.body)
		}
	}
	if r := b.do(t, http.MethodGet, "/v1/deliveries/NOPE-1", "", apiToken, nil); r.status != http.StatusNotFound {
		t.Errorf("GET unknown delivery = %d, want 404", r.status)
	}
}

func TestAuditAPIOffWithoutToken(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *ingest.Config) { c.APIToken = "" })
	r := b.do(t, http.MethodGet, "/v1/deliveries", "", "anything", nil)
	if r.status != http.StatusForbidden || !strings.Contains(r.body["error"].(string), "audit API is off") {
		t.Errorf("GET with audit API off = %d %v, want 403 saying it is off", r.status, r.body)
	}
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.do(t, http.MethodPost, "/v1/webhooks/secured", "application/json", "wrong-"+routeToken, relaytest.Notification("X", 1, "firing"))
	b.do(t, http.MethodPost, "/v1/webhooks/secured", "application/json", routeToken, relaytest.Notification("X", 1, "firing"))
	b.do(t, http.MethodGet, "/v1/deliveries", "", apiToken, nil)
	b.do(t, http.MethodGet, "/v1/deliveries", "", "wrong-"+apiToken, nil)
	logs := b.logs.String()
	if logs == "" {
		t.Fatal("no log lines written; the check below would prove nothing")
	}
	for _, secret := range []string{routeToken, apiToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains secret %q:\n%s", secret, logs)
		}
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if r := b.do(t, http.MethodGet, "/-/healthy", "", "", nil); r.status != http.StatusOK {
		t.Errorf("/-/healthy = %d", r.status)
	}
	if r := b.do(t, http.MethodGet, "/-/ready", "", "", nil); r.status != http.StatusOK {
		t.Errorf("/-/ready = %d %v", r.status, r.body)
	}
	b.proxy.Down()
	if r := b.do(t, http.MethodGet, "/-/ready", "", "", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("/-/ready with database down = %d, want 503", r.status)
	}
	if r := b.do(t, http.MethodGet, "/-/healthy", "", "", nil); r.status != http.StatusOK {
		t.Errorf("/-/healthy with database down = %d, want 200", r.status)
	}
	b.proxy.Up()
	resp, err := http.Get(b.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, name := range []string{"relay_webhooks_received_total", "relay_ingest_duration_seconds", "relay_webhook_duplicates_total"} {
		if !bytes.Contains(raw, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

func testutilCounter(t *testing.T, b testBundle, route, result string) float64 {
	t.Helper()
	return testutil.ToFloat64(counter(t, b.reg, route, result))
}
