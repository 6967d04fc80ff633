package ingest_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestWebhookForgedFingerprintIsNotADuplicate is the attack of issue #13
// over HTTP: a token holder posts a notification with the group key,
// fingerprint and start time of a real one but other labels and summary.
// It used to be answered duplicate:true and never sent. Now it is new
// content, and the disagreeing fingerprint is counted and logged.
func TestWebhookForgedFingerprintIsNotADuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	real := relaytest.Notification("HighCPU", 1, "firing")
	first := b.post(t, "prod", real)
	if first.status != http.StatusAccepted {
		t.Fatalf("first POST = %d %v, want 202", first.status, first.body)
	}
	forged := bytes.ReplaceAll(real, []byte("db-1.example.com:9100"), []byte("db-9.example.com:9100"))
	for i, body := range [][]byte{
		forged,
		bytes.ReplaceAll(forged, []byte(`"severity":"critical"`), []byte(`"severity":"page"`)),
	} {
		resp := b.post(t, "prod", body)
		if resp.status != http.StatusAccepted || resp.body["duplicate"] != false {
			t.Fatalf("forged POST %d = %d %v, want 202 duplicate:false", i, resp.status, resp.body)
		}
	}
	if n := b.deliveryCount(t); n != 6 {
		t.Errorf("%d deliveries stored, want 6 (three notifications, two conversations)", n)
	}
	// The real notification again is still a duplicate of the first.
	if resp := b.post(t, "prod", real); resp.status != http.StatusOK || resp.body["duplicate"] != true {
		t.Errorf("real POST again = %d %v, want 200 duplicate:true", resp.status, resp.body)
	}
	got := b.metric(t, "relay_webhook_fingerprint_mismatches_total", map[string]string{"route": "prod"})
	if got != 2 {
		t.Errorf("relay_webhook_fingerprint_mismatches_total{route=prod} = %v, want 2 (one per forged alert)", got)
	}
	logs := b.logs.String()
	if !strings.Contains(logs, "fingerprints that do not match their labels") || !strings.Contains(logs, `"route":"prod"`) {
		t.Errorf("no warning about the fingerprint mismatch in the log:\n%s", logs)
	}
}
