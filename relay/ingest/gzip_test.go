package ingest_test

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/relaytest"
)

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// postEncoded posts body with the given Content-Encoding header values
// (none when nil) and a Content-Length unless chunked.
func (b testBundle) postEncoded(t *testing.T, body []byte, chunked bool, encodings ...string) response {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = struct{ *bytes.Reader }{bytes.NewReader(body)} // unknown length: sent chunked
	}
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/v1/webhooks/prod", rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, e := range encodings {
		req.Header.Add("Content-Encoding", e)
	}
	return send(t, req)
}

// TestWebhookGzip: a gzip-compressed body is taken, stored decompressed
// and deduplicated like the same body sent plain; the size limit applies
// to the decompressed bytes, so a small bomb is refused 413 after reading
// no more than the limit; an encoding relay cannot read is a 415 that
// names it, not a 400 (issue #13).
func TestWebhookGzip(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	b := setup(t, func(c *ingest.Config) { c.MaxBodyBytes = limit })
	plain := relaytest.Notification("Zipped", 3, "firing")
	zipped := gzipBytes(t, plain)

	first := b.postEncoded(t, zipped, false, "gzip")
	if first.status != http.StatusAccepted {
		t.Fatalf("POST gzip = %d %v, want 202", first.status, first.body)
	}
	d, err := b.check.GetDelivery(t.Context(), first.body["operationIds"].([]any)[0].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Payload, plain) {
		t.Errorf("stored payload = %.80q..., want the decompressed body", d.Payload)
	}
	if again := b.postEncoded(t, plain, false); again.status != http.StatusOK || again.body["duplicate"] != true {
		t.Errorf("the same body sent plain = %d %v, want 200 duplicate", again.status, again.body)
	}

	// Exactly the limit once decompressed is taken; one byte more is not,
	// however small it is compressed.
	atLimit := append(relaytest.Notification("AtLimit", 1, "firing"), bytes.Repeat([]byte(" "), limit)...)[:limit]
	overLimit := append(bytes.Clone(atLimit), ' ')
	bomb := bytes.Repeat([]byte(" "), 16<<20) // 16 MiB of spaces, 16 kB gzipped
	incompressible := make([]byte, 2*limit)
	_, _ = rand.Read(incompressible)
	corrupt := bytes.Clone(zipped)
	corrupt[len(corrupt)/2] ^= 0xff

	tests := []struct {
		name      string
		body      []byte
		chunked   bool
		encodings []string
		want      int
		wantError string
	}{
		{name: "x-gzip, upper case", body: gzipBytes(t, relaytest.Notification("X", 1, "firing")), encodings: []string{"X-GZIP"}, want: 202},
		{name: "gzip and identity", body: gzipBytes(t, relaytest.Notification("Y", 1, "firing")), encodings: []string{"identity, gzip"}, want: 202},
		{name: "identity", body: relaytest.Notification("Z", 1, "firing"), encodings: []string{"identity"}, want: 202},
		{name: "chunked gzip", body: gzipBytes(t, relaytest.Notification("C", 1, "firing")), chunked: true, encodings: []string{"gzip"}, want: 202},
		{name: "at the limit decompressed", body: gzipBytes(t, atLimit), encodings: []string{"gzip"}, want: 202},
		{name: "a byte over decompressed", body: gzipBytes(t, overLimit), encodings: []string{"gzip"}, want: 413,
			wantError: fmt.Sprintf("larger than %d bytes once decompressed", limit)},
		{name: "bomb", body: gzipBytes(t, bomb), chunked: true, encodings: []string{"gzip"}, want: 413, wantError: "once decompressed"},
		{name: "compressed over the limit", body: gzipBytes(t, incompressible), chunked: true, encodings: []string{"gzip"}, want: 413,
			wantError: fmt.Sprintf("larger than %d bytes", limit)},
		{name: "corrupt", body: corrupt, encodings: []string{"gzip"}, want: 400, wantError: "not valid gzip"},
		{name: "truncated", body: zipped[:len(zipped)/2], encodings: []string{"gzip"}, want: 400, wantError: "not valid gzip"},
		{name: "not gzip at all", body: plain, encodings: []string{"gzip"}, want: 400, wantError: "not valid gzip"},
		{name: "empty", body: nil, encodings: []string{"gzip"}, want: 400, wantError: "not valid gzip"},
		{name: "brotli", body: plain, encodings: []string{"br"}, want: 415, wantError: `Content-Encoding "br" is not supported`},
		{name: "deflate", body: plain, encodings: []string{"deflate"}, want: 415, wantError: `"deflate"`},
		{name: "gzip twice", body: gzipBytes(t, zipped), encodings: []string{"gzip", "gzip"}, want: 415, wantError: `"gzip, gzip"`},
	}
	for _, tt := range tests {
		resp := b.postEncoded(t, tt.body, tt.chunked, tt.encodings...)
		msg, _ := resp.body["error"].(string)
		if resp.status != tt.want || !strings.Contains(msg, tt.wantError) {
			t.Errorf("%s: POST = %d %v, want %d mentioning %q", tt.name, resp.status, resp.body, tt.want, tt.wantError)
		}
	}
	if got := testutilCounter(t, b, "prod", "unsupported_media_type"); got != 3 {
		t.Errorf(`relay_webhooks_received_total{result="unsupported_media_type"} = %v, want 3`, got)
	}
	if got := metricValue(t, b.reg, "relay_ingest_inflight_bytes"); got != 0 {
		t.Errorf("relay_ingest_inflight_bytes = %v once all are answered, want 0", got)
	}
}

// TestWebhookGzipReservesTheDecompressedBound: a compressed body may
// inflate to max_body_bytes, so that is what it holds of the in-flight
// cap while it is read, whatever its Content-Length.
func TestWebhookGzipReservesTheDecompressedBound(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	b := setup(t, func(c *ingest.Config) { c.MaxBodyBytes = limit })
	body := gzipBytes(t, relaytest.Notification("Held", 1, "firing"))
	c := dialRaw(t, b.srv.URL)
	head := fmt.Appendf(nil, "POST /v1/webhooks/prod HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"+
		"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(body))
	c.send(t, head, body[:len(body)/2])
	waitFor(t, "the body to be held", func() bool {
		return metricValue(t, b.reg, "relay_ingest_inflight_bytes") == limit
	})
	c.send(t, body[len(body)/2:])
	waitFor(t, "the answer", func() bool { return c.answer() != nil })
	if a := c.answer(); a.status != http.StatusAccepted {
		t.Errorf("answer %d %v, want 202", a.status, a.body)
	}
	if got := metricValue(t, b.reg, "relay_ingest_inflight_bytes"); got != 0 {
		t.Errorf("relay_ingest_inflight_bytes = %v once answered, want 0", got)
	}
}
