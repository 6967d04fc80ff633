package store_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

// benchStore opens the database named by BENCH_DATABASE_URL (migrated,
// perhaps filled with history by deploy/bench/fill-history.sql), or a new
// empty one; it is closed when the benchmark ends.
func benchStore(b *testing.B) *store.DB {
	url := os.Getenv("BENCH_DATABASE_URL")
	if url == "" {
		url = relaytest.NewDatabase(b)
	}
	db, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	return db
}

// BenchmarkEnqueue measures the store alone (no HTTP, no rendering): b.N
// notifications of realistic size recorded by 1, 8 and 32 concurrent
// callers through the group commit. Compare with pgbench's rate in
// deploy/local/bench-ingest.sh.
//
// With BENCH_DATABASE_URL set it runs on that database (migrated, perhaps
// filled with history by deploy/bench/fill-history.sql) instead of an empty
// one; the notifications it adds are left there.
func BenchmarkEnqueue(b *testing.B) {
	db := benchStore(b)
	payload := relaytest.Notification("HighCPU", 3, "firing")
	text := string(payload[:700]) // about a rendered message's size
	var seq atomic.Int64
	run := time.Now().UnixNano()
	for _, senders := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range senders {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						n := &store.NewNotification{Route: "bench", Format: "alertmanager",
							DedupKey: fmt.Sprintf("bench-%d-%d", run, seq.Add(1)), Window: 15 * time.Minute, Payload: payload,
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

// BenchmarkClaimFinish measures the queue's statements as the worker runs
// them: b.N deliveries queued for 4 recipients, each recipient's line
// drained by its own goroutine with one Finish (delivered) per message that
// also claims the next one. It reports the p50 and p99 of a Finish (the
// claim-to-finish round trip of one message) and messages per second.
// With BENCH_DATABASE_URL set it runs on that database (migrated, perhaps
// filled with history by deploy/bench/fill-history.sql) instead of an
// empty one; the deliveries it adds are left there.
func BenchmarkClaimFinish(b *testing.B) {
	db := benchStore(b)
	ctx := context.Background()
	const recipients = 4
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	var ns []*store.NewNotification
	for i := range b.N {
		to := fmt.Sprintf("sip:bench-%s-%d@contoso.com", run, i%recipients)
		ns = append(ns, &store.NewNotification{Route: "bench", Format: "alertmanager", DedupKey: fmt.Sprintf("cf-%s-%d", run, i),
			Window: time.Minute, Payload: []byte(`{"version":"4"}`),
			Messages: []store.NewMessage{{Conversation: "c", Target: relay.Target{To: to}, Text: "benchmark message"}}})
		if len(ns) == 500 || i == b.N-1 {
			if _, _, err := db.EnqueueBatch(ns, time.Now()); err != nil {
				b.Fatal(err)
			}
			ns = ns[:0]
		}
	}
	b.ResetTimer()
	start := time.Now()
	first, err := db.Claim(ctx, time.Now(), store.ClaimOptions{Limit: 1000, Lease: time.Minute, Gen: 1})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for _, c := range first {
		if !strings.HasPrefix(c.Target.To, "sip:bench-"+run) {
			continue
		}
		wg.Go(func() {
			var mine []time.Duration
			for cur := &c; cur != nil; {
				t0 := time.Now()
				res, err := db.Finish(ctx, store.Finish{OperationID: cur.OperationID, Attempt: cur.Attempt, Gen: 1,
					State: relay.StateDelivered, Now: time.Now(), QueuedAt: cur.QueuedAt,
					Record:    &store.AttemptRecord{UCWAOperationID: cur.OperationID, Outcome: "sent", StartedAt: t0, FinishedAt: t0},
					ClaimNext: &store.NextClaim{Recipient: cur.Target.To, Lease: time.Minute}})
				if err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
				cur = res.Next
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	took := time.Since(start)
	b.StopTimer()
	if len(lat) != b.N {
		b.Fatalf("%d deliveries finished, want %d", len(lat), b.N)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/took.Seconds(), "msg/s")
	b.ReportMetric(0, "ns/op")
}
