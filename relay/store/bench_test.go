package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

// BenchmarkEnqueue measures the store alone (no HTTP, no rendering): b.N
// notifications of realistic size recorded by 1, 8 and 32 concurrent
// callers through the group commit. Compare with pgbench's rate in
// deploy/local/bench-ingest.sh.
func BenchmarkEnqueue(b *testing.B) {
	url := relaytest.NewDatabase(b)
	db, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	payload := relaytest.Notification("HighCPU", 3, "firing")
	text := string(payload[:700]) // about a rendered message's size
	var seq atomic.Int64
	for _, senders := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range senders {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						n := &store.NewNotification{Route: "bench", Format: "alertmanager",
							DedupKey: fmt.Sprintf("bench-%d", seq.Add(1)), Window: 15 * time.Minute, Payload: payload,
							Messages: []store.NewMessage{{Conversation: "oncall", Text: text, GroupKey: "g", Status: "firing",
								Target: relay.Target{To: "sip:oncall@contoso.com", Subject: "Production alerts"}}}}
						if _, err := db.Enqueue(context.Background(), n); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}
