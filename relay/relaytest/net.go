package relaytest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FreeAddr returns a loopback host:port nothing listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// UCWAYAML is a config file's ucwa section for the simulator at urls, with
// the protocol timers shrunk so tests run minutes of protocol time in
// seconds. The password comes from RELAY_UCWA_PASSWORD.
func UCWAYAML(urls []string) string {
	return `ucwa:
  discovery_urls: ["` + strings.Join(urls, `", "`) + `"]
  username: alertbot@contoso.com
  timers:
    request_timeout: 5s
    invitation_timeout: 5s
    message_timeout: 3s
    retry_min: 10ms
    retry_max: 200ms
    failover_min: 20ms
    failover_max: 200ms
`
}

// WaitReady waits until the relay at base answers /-/ready with 200 (its
// schema is current and webhooks are open), failing t after 30 s.
func WaitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("relay did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PostWebhook posts body as JSON to url and returns the status and the
// answer's body. A 503 is tried again for up to 30 s, as Alertmanager
// does: a loaded machine may take longer than relay's commit allowance now
// and then, and the tests using this are about what happens to a webhook
// once accepted. A test about 503s posts on its own.
func PostWebhook(t testing.TB, url string, body []byte) (int, []byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("POST %s: read the answer: %v", url, err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return resp.StatusCode, raw
		}
		t.Logf("POST %s = 503 %s; trying again", url, bytes.TrimSpace(raw))
		time.Sleep(200 * time.Millisecond)
	}
}
