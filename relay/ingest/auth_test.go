package ingest_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestAuthSchemeIsCaseInsensitive: "bearer" is "Bearer" (RFC 9110 11.1,
// once RFC 7235), for webhook routes and the audit API alike; what is not
// a bearer token still is not.
func TestAuthSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tests := []struct {
		auth string
		want int
	}{
		{"Bearer " + routeToken, http.StatusAccepted},
		{"bearer " + routeToken, http.StatusAccepted},
		{"BEARER " + routeToken, http.StatusAccepted},
		{"bEaReR   " + routeToken, http.StatusAccepted},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer" + routeToken, http.StatusUnauthorized},
		{"Basic " + routeToken, http.StatusUnauthorized},
		{"bearer wrong-" + routeToken, http.StatusUnauthorized},
	}
	for i, tt := range tests {
		req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/v1/webhooks/secured",
			bytes.NewReader(relaytest.Notification(fmt.Sprint("Case", i), 1, "firing")))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", tt.auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != tt.want {
			t.Errorf("POST with Authorization %q = %d %s, want %d", tt.auth, resp.StatusCode, body, tt.want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/v1/deliveries", nil)
	req.Header.Set("Authorization", "bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/deliveries with a lower-case scheme = %d %s, want 200", resp.StatusCode, body)
	}
}
