package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestRedeliverIdempotency: the API's redelivery answers a repeated
// Idempotency-Key with the first answer (200) and queues nothing; without
// a key, a second redelivery while the first is queued is refused (409)
// naming it; the delivery's detail lists who asked, through what.
func TestRedeliverIdempotency(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	res := b.post(t, "prod", relaytest.Notification("g1", 1, "firing"))
	if res.status != http.StatusAccepted {
		t.Fatalf("webhook: %d %v", res.status, res.body)
	}
	id := res.body["operationIds"].([]any)[0].(string)
	if _, err := b.db.Pool().Exec(context.Background(), `UPDATE deliveries SET state = 'dead' WHERE operation_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	redeliver := func(key, userAgent string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/v1/deliveries/"+id+"/redeliver", nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		req.Header.Set("User-Agent", userAgent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, first := redeliver("click-1", "relay-cli/v0.2.0")
	if status != http.StatusAccepted || !strings.Contains(first, `"via":"cli"`) || !strings.Contains(first, `"requestedBy":"api-token"`) {
		t.Fatalf("first redeliver = %d %s; want 202 by api-token through the cli", status, first)
	}
	status, again := redeliver("click-1", "curl/8")
	if status != http.StatusOK || again != first {
		t.Errorf("same key again = %d %s; want 200 and the first answer %s", status, again, first)
	}
	status, body := redeliver("", "curl/8")
	if status != http.StatusConflict || !strings.Contains(body, "already queued (redelivered at ") {
		t.Errorf("no key while queued = %d %s; want 409 naming the first redelivery", status, body)
	}
	status, body = redeliver(strings.Repeat("k", 256), "curl/8")
	if status != http.StatusBadRequest || !strings.Contains(body, "Idempotency-Key") {
		t.Errorf("overlong key = %d %s; want 400 naming the header", status, body)
	}
	detail := b.do(t, http.MethodGet, "/v1/deliveries/"+id, "", apiToken, nil)
	raw, _ := json.Marshal(detail.body["redeliveries"])
	if want := `"previousState":"dead","requestedAt":`; !strings.Contains(string(raw), want) || !strings.Contains(string(raw), `"via":"cli"`) ||
		len(detail.body["redeliveries"].([]any)) != 1 {
		t.Errorf("detail redeliveries = %s, want one, from dead, through the cli", raw)
	}
}
