package ingest_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/skype-relay/relay/relay/relaytest"
)

// FuzzWebhook posts arbitrary bodies to the webhook endpoint (in process,
// real database): whatever arrives, the answer is never a 5xx, because
// garbage is the sender's fault and a 5xx would make Alertmanager retry it
// forever.
func FuzzWebhook(f *testing.F) {
	b := setup(f, nil)
	h := b.srv.Config.Handler
	f.Add(relaytest.Notification("HighCPU", 2, "firing"))
	f.Add(relaytest.Notification("HighCPU", 1, "resolved"))
	f.Add([]byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","startsAt":"2026-01-01T00:00:00Z","labels":{"alertname":"\ud800"}}]}`))
	f.Add([]byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","startsAt":"0001-01-01T00:00:01Z","annotations":{"summary":"{{ .Status }}"}}]}`))
	f.Add([]byte("\xff\xfe{}"))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/prod", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %q = %d %s, want < 500", body, rec.Code, rec.Body)
		}
	})
}
