package ingest_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/relaytest"
)

// TestPerAlertIsCapped is the fan-out of issue #13: one unauthenticated
// request of 1,000 alerts to a per_alert route made 1,000 messages to one
// person. Now it makes ingest.max_messages_per_notification (20): 19 alerts
// of their own and one message that summarises the other 981, within
// max_message_bytes. The payload is stored and audited whole.
func TestPerAlertIsCapped(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *ingest.Config) {
		withSources(c)
		c.MaxBodyBytes = 1 << 20
	})
	body := relaytest.Notification("Storm", 1000, "firing")
	resp := b.post(t, "each", body) // no token: anyone could send it
	if resp.status != http.StatusAccepted {
		t.Fatalf("POST = %d %v, want 202", resp.status, resp.body)
	}
	ids := resp.body["operationIds"].([]any)
	if len(ids) != ingest.DefaultMaxMessages {
		t.Fatalf("a per_alert notification of 1000 alerts made %d deliveries, want %d", len(ids), ingest.DefaultMaxMessages)
	}
	for i, id := range ids {
		d, err := b.check.GetDelivery(t.Context(), id.(string))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && !bytes.Equal(d.Payload, body) {
			t.Errorf("stored payload is %d bytes, want the %d bytes received, byte for byte", len(d.Payload), len(body))
		}
		if i < len(ids)-1 {
			if want := fmt.Sprintf("db-%d.example.com:9100", i+1); !strings.Contains(d.Text, want) || strings.Contains(d.Text, "more") {
				t.Errorf("message %d = %q, want alert %s alone", i+1, d.Text, want)
			}
			continue
		}
		for _, want := range []string{"and 981 more Storm alerts (981 firing), not sent one by one: instance=db-20.example.com:9100; instance=db-21.example.com:9100;",
			"more\nhttp://alertmanager.example.com:9093/#/alerts?receiver=relay"} {
			if !strings.Contains(d.Text, want) {
				t.Errorf("last message lacks %q:\n%s", want, d.Text)
			}
		}
		if len(d.Text) > 8192 || d.AlertName != "Storm" {
			t.Errorf("last message: %d bytes (at most 8192), alertname %q (want Storm)", len(d.Text), d.AlertName)
		}
	}
	if got := b.metric(t, "relay_webhook_capped_total", map[string]string{"route": "each"}); got != 1 {
		t.Errorf("relay_webhook_capped_total{route=each} = %v, want 1", got)
	}
	// A retry is a duplicate, and is not counted again.
	if again := b.post(t, "each", body); again.status != http.StatusOK || !equalJSON(again.body["operationIds"], ids) {
		t.Errorf("POST again = %d %v, want 200 with the same operationIds", again.status, again.body)
	}
	if got := b.metric(t, "relay_webhook_capped_total", map[string]string{"route": "each"}); got != 1 {
		t.Errorf("relay_webhook_capped_total{route=each} = %v after a duplicate, want still 1", got)
	}
}

// TestMaxMessagesPerNotification: the cap as configured, resolved alerts
// marked in the summary, and what stays under it untouched.
func TestMaxMessagesPerNotification(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *ingest.Config) {
		withSources(c)
		c.MaxMessages = 3
	})
	// Five alerts: db-2 and db-4 resolved.
	body := relaytest.Notification("Mixed", 5, "firing")
	for _, inst := range []string{"db-2", "db-4"} {
		body = bytes.Replace(body, []byte(`"status":"firing","labels":{"alertname":"Mixed","env":"prod","instance":"`+inst),
			[]byte(`"status":"resolved","labels":{"alertname":"Mixed","env":"prod","instance":"`+inst), 1)
	}
	tests := []struct {
		route string
		want  []string // texts of the messages, by what each must hold
	}{
		// per_alert: firing db-1, db-3, then db-5 firing and the two resolved.
		{route: "each", want: []string{"db-1.", "db-3.", "and 3 more Mixed alerts (1 firing, 2 resolved), not sent one by one: " +
			"instance=db-5.example.com:9100; instance=db-2.example.com:9100 (resolved); instance=db-4.example.com:9100 (resolved)\nhttp"}},
		// split_status makes two messages, under the cap.
		{route: "split", want: []string{"[FIRING:3]", "[RESOLVED"}},
		{route: "prod", want: []string{"[FIRING:3, RESOLVED:2]", "[FIRING:3, RESOLVED:2]"}},
	}
	for _, tt := range tests {
		resp := b.post(t, tt.route, body)
		if resp.status != http.StatusAccepted {
			t.Fatalf("POST %s = %d %v", tt.route, resp.status, resp.body)
		}
		ids := resp.body["operationIds"].([]any)
		if len(ids) != len(tt.want) {
			t.Errorf("route %s made %d deliveries, want %d", tt.route, len(ids), len(tt.want))
			continue
		}
		for i, id := range ids {
			d, err := b.check.GetDelivery(t.Context(), id.(string))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(d.Text, tt.want[i]) {
				t.Errorf("route %s, message %d = %q, want it to hold %q", tt.route, i+1, d.Text, tt.want[i])
			}
		}
	}
	if got := b.metric(t, "relay_webhook_capped_total", map[string]string{"route": "split"}); got != 0 {
		t.Errorf("relay_webhook_capped_total{route=split} = %v, want 0", got)
	}
}
