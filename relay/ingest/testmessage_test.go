package ingest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/ingest"
)

func TestTestMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *ingest.Config) {
		c.Conversations = map[string][]relay.Target{
			"oncall": {{To: "sip:oncall@contoso.com"}},
			"pair":   {{To: "sip:anna@contoso.com"}, {To: "sip:ben@contoso.com", Subject: "Tests"}},
		}
	})
	post := func(t *testing.T, token, contentType, body string) response {
		t.Helper()
		return b.do(t, http.MethodPost, "/v1/test-messages", contentType, token, []byte(body))
	}

	res := post(t, apiToken, "application/json", `{"conversation":"pair","text":"hello\nfrom the test"}`)
	if res.status != http.StatusAccepted {
		t.Fatalf("POST test message = %d %v, want 202", res.status, res.body)
	}
	ids, _ := res.body["operationIds"].([]any)
	if len(ids) != 2 || res.body["duplicate"] != false {
		t.Fatalf("answer %v, want two operationIds, not a duplicate", res.body)
	}
	for i, want := range []string{"sip:anna@contoso.com", "sip:ben@contoso.com"} {
		d, err := b.check.GetDelivery(context.Background(), ids[i].(string))
		if err != nil {
			t.Fatal(err)
		}
		if d.Route != ingest.TestRoute || d.Conversation != "pair" || d.Recipient != want || d.Text != "hello\nfrom the test" ||
			d.State != relay.StatePending || d.Format != "test" {
			t.Errorf("delivery %d = route %q, conversation %q, recipient %q, text %q, state %s, format %q; want a pending test message to %s",
				i, d.Route, d.Conversation, d.Recipient, d.Text, d.State, d.Format, want)
		}
	}

	// The same request again is a new message: a test is never a duplicate.
	again := post(t, apiToken, "application/json", `{"conversation":"pair","text":"hello\nfrom the test"}`)
	if again.status != http.StatusAccepted || again.body["notificationId"] == res.body["notificationId"] {
		t.Errorf("second identical test = %d %v, want 202 and a new notification", again.status, again.body)
	}

	// No text: a default one that says what it is.
	def := post(t, apiToken, "application/json", `{"conversation":"oncall"}`)
	if def.status != http.StatusAccepted {
		t.Fatalf("POST without text = %d %v", def.status, def.body)
	}
	d, err := b.check.GetDelivery(context.Background(), def.body["operationIds"].([]any)[0].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Text, "Test message from relay") {
		t.Errorf("default text = %q", d.Text)
	}

	before := b.deliveryCount(t)
	for _, tc := range []struct {
		name, token, contentType, body string
		status                         int
		msg                            string
	}{
		{"no token", "", "application/json", `{"conversation":"oncall"}`, http.StatusUnauthorized, "bearer token"},
		{"wrong token", "nope", "application/json", `{"conversation":"oncall"}`, http.StatusUnauthorized, "bearer token"},
		{"unknown conversation", apiToken, "application/json", `{"conversation":"ghost"}`, http.StatusNotFound, "configured: oncall, pair"},
		{"not JSON", apiToken, "text/plain", `hi`, http.StatusUnsupportedMediaType, "application/json"},
		{"unknown field", apiToken, "application/json", `{"conversation":"oncall","to":"sip:x@y.z"}`, http.StatusBadRequest, "unknown field"},
		{"two objects", apiToken, "application/json", `{"conversation":"oncall"} {}`, http.StatusBadRequest, "one JSON object"},
		{"control character", apiToken, "application/json", `{"conversation":"oncall","text":"a\u001b[2Jb"}`, http.StatusBadRequest, "control character"},
		{"too long", apiToken, "application/json", `{"conversation":"oncall","text":"` + strings.Repeat("x", 9000) + `"}`, http.StatusBadRequest, "max_message_bytes"},
	} {
		res := post(t, tc.token, tc.contentType, tc.body)
		msg, _ := res.body["error"].(string)
		if res.status != tc.status || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: POST = %d %q, want %d saying %q", tc.name, res.status, msg, tc.status, tc.msg)
		}
	}
	if n := b.deliveryCount(t); n != before {
		t.Errorf("refused test messages created %d deliveries", n-before)
	}
}

func TestTestMessageAuditOff(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *ingest.Config) {
		c.APIToken = ""
		c.Conversations = map[string][]relay.Target{"oncall": {{To: "sip:oncall@contoso.com"}}}
	})
	res := b.do(t, http.MethodPost, "/v1/test-messages", "application/json", "", []byte(`{"conversation":"oncall"}`))
	if res.status != http.StatusForbidden {
		t.Errorf("POST test message with the audit API off = %d %v, want 403", res.status, res.body)
	}
}
