package ingest_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/skype-relay/relay/relay/ingest"
)

// TestReloadIsOptIn: POST /-/reload answers 403 unless relay serve runs
// with --web.enable-lifecycle; either way a client without the credentials
// gets 401 and learns nothing more. The credentials are the API token when
// one is configured, else the listener's basic auth.
func TestReloadIsOptIn(t *testing.T) {
	t.Parallel()
	basic := func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == "ops" && p == "pw"
	}
	tests := []struct {
		name      string
		lifecycle bool
		apiToken  string
		listener  func(*http.Request) bool
		auth      string // Authorization header
		want      int
		wantError string
	}{
		{name: "off, no credentials", apiToken: apiToken, want: 401},
		{name: "off, API token", apiToken: apiToken, auth: "Bearer " + apiToken, want: 403, wantError: "--web.enable-lifecycle"},
		{name: "off, no API token, loopback", want: 403, wantError: "--web.enable-lifecycle"},
		{name: "off, basic auth missing", listener: basic, want: 401},
		{name: "off, basic auth", listener: basic, auth: basicHeader("ops", "pw"), want: 403, wantError: "--web.enable-lifecycle"},
		{name: "on, no credentials", lifecycle: true, apiToken: apiToken, want: 401},
		{name: "on, wrong token", lifecycle: true, apiToken: apiToken, auth: "Bearer nope", want: 401},
		{name: "on, basic auth instead of the API token", lifecycle: true, apiToken: apiToken, listener: basic,
			auth: basicHeader("ops", "pw"), want: 401},
		{name: "on, API token", lifecycle: true, apiToken: apiToken, auth: "Bearer " + apiToken, want: 200},
		{name: "on, API token, lower-case scheme", lifecycle: true, apiToken: apiToken, auth: "bearer " + apiToken, want: 200},
		{name: "on, API token alone under basic auth", lifecycle: true, apiToken: apiToken, listener: basic,
			auth: "Bearer " + apiToken, want: 200},
		{name: "on, no API token, loopback", lifecycle: true, want: 200},
		{name: "on, no API token, basic auth missing", lifecycle: true, listener: basic, want: 401},
		{name: "on, no API token, basic auth", lifecycle: true, listener: basic, auth: basicHeader("ops", "pw"), want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var reloads atomic.Int64
			b := setupWith(t, bundleOptions{
				lifecycle:    tt.lifecycle,
				listenerAuth: tt.listener,
				reload:       func(context.Context) error { reloads.Add(1); return nil },
			}, func(c *ingest.Config) { c.APIToken = tt.apiToken })
			req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/-/reload", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != tt.want || !strings.Contains(body, tt.wantError) {
				t.Errorf("POST /-/reload = %d %s, want %d mentioning %q", resp.StatusCode, body, tt.want, tt.wantError)
			}
			if want := map[bool]int64{true: 1, false: 0}[tt.want == 200]; reloads.Load() != want {
				t.Errorf("reloaded %d times, want %d", reloads.Load(), want)
			}
		})
	}
}
