package ingest_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestSlowBodyIsATimeout: a sender whose body stops coming before the
// server's read timeout is answered 503 (it may try again) and counted as
// result "timeout", not as a bad request (issue #13), plain or gzipped.
func TestSlowBodyIsATimeout(t *testing.T) {
	t.Parallel()
	plain := relaytest.Notification("Slow", 1, "firing")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(plain)
	_ = zw.Close()
	for _, tc := range []struct {
		name, header string
		body         []byte
	}{{"plain", "", plain}, {"gzip", "Content-Encoding: gzip\r\n", gz.Bytes()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			slowBody(t, tc.header, tc.body)
		})
	}
}

func slowBody(t *testing.T, header string, body []byte) {
	b := setupWith(t, bundleOptions{readTimeout: 300 * time.Millisecond}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half of the body, then nothing: the server's read deadline ends it.
	_, err = fmt.Fprintf(conn, "POST /v1/webhooks/prod HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"+
		"%sContent-Length: %d\r\n\r\n%s", header, len(body), body[:len(body)/2])
	if err != nil {
		t.Fatal(err)
	}
	// Not a timing check: only a bound, so that a failure does not hang.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a request whose body stopped: %v", err)
	}
	msg := readAll(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("slow body = %d (Retry-After %q) %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), msg)
	}
	if got := testutilCounter(t, b, "prod", "timeout"); got != 1 {
		t.Errorf(`relay_webhooks_received_total{route="prod",result="timeout"} = %v, want 1`, got)
	}
	for _, other := range []string{"bad_request", "unavailable"} {
		if got := testutilCounter(t, b, "prod", other); got != 0 {
			t.Errorf(`relay_webhooks_received_total{route="prod",result=%q} = %v, want 0`, other, got)
		}
	}
	if n := b.deliveryCount(t); n != 0 {
		t.Errorf("%d deliveries stored from half a body, want 0", n)
	}
}
