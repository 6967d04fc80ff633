package ingest_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/skype-relay/relay/relay/relaytest"
)

// BenchmarkWebhook posts distinct notifications over loopback HTTP to the
// in-process handler backed by a real database; -cpu sets the senders.
// The load command with pgbench alongside is deploy/local/bench-ingest.sh.
func BenchmarkWebhook(b *testing.B) {
	bundle := setup(b, nil)
	tmpl := relaytest.Notification("BENCHGROUP", 3, "firing")
	var n atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bytes.ReplaceAll(tmpl, []byte("BENCHGROUP"), []byte("G"+strconv.FormatInt(n.Add(1), 10)))
			resp, err := client.Post(bundle.srv.URL+"/v1/webhooks/prod", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}
