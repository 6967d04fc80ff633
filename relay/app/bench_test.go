package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

// BenchmarkDeliveryLatency posts Alertmanager notifications over HTTP at a
// steady 200 per second (one alert each, one conversation) and measures the
// time from the start of each POST to the simulator accepting the message.
// Run with -benchtime=Nx, where N is the number of notifications.
func BenchmarkDeliveryLatency(b *testing.B) {
	sim := newSim(b)
	r := startRelay(b, relaytest.NewDatabase(b), oneByOne(deliveryYAML(sim, `
  max_in_flight: 256
`)+"\n"))
	// Warm the session and the conversation.
	r.waitFinal(30*time.Second, r.postTo("oncall-only", relaytest.Notification("Warmup", 1, "firing"))...)

	const rate = 200
	sent := make(map[string]time.Time, b.N)
	var mu sync.Mutex
	b.ResetTimer()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range b.N {
		<-tick.C
		wg.Go(func() {
			body := relaytest.Notification(fmt.Sprintf("Lat%d", i), 1, "firing")
			start := time.Now()
			ids := r.postTo("oncall-only", body)
			mu.Lock()
			sent[ids[0]] = start
			mu.Unlock()
		})
	}
	wg.Wait()
	lat := waitMessages(b, sim.Messages, sent, 60*time.Second)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// waitMessages waits until the simulator accepted a message for every
// delivery in sent and returns the latencies.
func waitMessages(b *testing.B, messages func() []simMessage, sent map[string]time.Time, timeout time.Duration) []time.Duration {
	deadline := time.Now().Add(timeout)
	for {
		var lat []time.Duration
		for _, m := range messages() {
			id, _, _ := strings.Cut(m.OperationID, ".")
			if t0, ok := sent[id]; ok {
				lat = append(lat, m.Time.Sub(t0))
			}
		}
		if len(lat) >= len(sent) {
			return lat
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d messages arrived", len(lat), len(sent))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkDeliveryThroughput queues b.N deliveries over 100 conversations
// (written straight to the store, so ingest is not what is measured), then
// lets the relay deliver them through Postgres and the UCWA simulator, and
// reports confirmed messages per second. It checks every message arrived
// and each conversation got its messages in order.
func BenchmarkDeliveryThroughput(b *testing.B) {
	sim := newSim(b)
	dbURL, db := benchStore(b)
	const convs = 100
	queueDirect(b, db, b.N, func(i int) string { return fmt.Sprintf("sip:user%03d@contoso.com", i%convs) })
	pgStart, err := relaytest.PostgresCPU(context.Background(), db.Pool())
	if err != nil {
		b.Fatalf("read PostgreSQL's CPU time: %v", err)
	}
	procStart := processCPU()
	b.ResetTimer()
	start := time.Now()
	r := startRelay(b, dbURL, oneByOne(deliveryYAML(sim, `
  max_in_flight: 256
`)+"\n"))
	waitDrained(b, db)
	elapsed := time.Since(start)
	b.StopTimer()
	pgEnd, _ := relaytest.PostgresCPU(context.Background(), db.Pool())
	procEnd := processCPU()
	r.stop()
	if n := delivered(b, db); n != b.N {
		b.Fatalf("%d of %d delivered", n, b.N)
	}
	// Order per conversation: each recipient got its messages in queue
	// order (seq). A message resent after an unconfirmed try comes again,
	// marked, before the next one.
	seqOf := map[string]int64{}
	rows, err := db.Pool().Query(context.Background(), `SELECT text, seq FROM deliveries`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var text string
		var seq int64
		_ = rows.Scan(&text, &seq)
		seqOf[text] = seq
	}
	rows.Close()
	last := map[string]int64{}
	resent := 0
	for _, m := range sim.Messages() {
		body, again := strings.CutPrefix(m.Body, "(resent) ")
		if again {
			resent++
		}
		seq, ok := seqOf[body]
		if !ok {
			b.Fatalf("unexpected message %q", m.Body)
		}
		if prev, ok := last[m.Recipient]; ok && seq < prev {
			b.Fatalf("%s got seq %d after %d", m.Recipient, seq, prev)
		}
		last[m.Recipient] = seq
	}
	var reasons []string
	rows, _ = db.Pool().Query(context.Background(), `SELECT outcome || '/' || reason, count(*) FROM attempts GROUP BY 1`)
	for rows.Next() {
		var s string
		var n int
		_ = rows.Scan(&s, &n)
		reasons = append(reasons, fmt.Sprintf("%s=%d", s, n))
	}
	rows.Close()
	b.Logf("attempts by outcome: %v", reasons)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(resent), "resent")
	// PostgreSQL's CPU per message: the whole cluster's, so run it alone.
	// This process's CPU (relay, the simulator and this benchmark together)
	// is an upper bound of relay's own.
	b.ReportMetric(float64((pgEnd-pgStart).Microseconds())/1000/float64(b.N), "pg-cpu-ms/msg")
	b.ReportMetric(float64((procEnd-procStart).Microseconds())/1000/float64(b.N), "proc-cpu-ms/msg")
	b.ReportMetric(0, "ns/op")
}

func (r *relayInstance) postTo(route string, body []byte) []string {
	resp, err := http.Post(r.base+"/v1/webhooks/"+route, "application/json", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		OperationIDs []string `json:"operationIds"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.OperationIDs) == 0 {
		r.t.Fatalf("POST %s = %d (%v)", route, resp.StatusCode, err)
	}
	return out.OperationIDs
}

type simMessage = ucwasim.Message

// queueDirect writes n deliveries straight to the store (so ingest is not
// what a benchmark measures), message i to recipient to(i), from 32
// goroutines sharing group commits.
func queueDirect(b *testing.B, db *store.DB, n int, to func(i int) string) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n := &store.NewNotification{Route: "prod", Format: "alertmanager", DedupKey: fmt.Sprintf("bench-%d", i),
				Window: time.Minute, Payload: []byte(`{}`), Messages: []store.NewMessage{{
					Conversation: "oncall", Target: relay.Target{To: to(i)}, Text: fmt.Sprintf("message %d", i)}}}
			if _, err := db.Enqueue(context.Background(), n); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

// benchStore is a fresh database and the store on it, closed when b ends.
func benchStore(b *testing.B) (string, *store.DB) {
	dbURL := relaytest.NewDatabase(b)
	db, err := store.Open(context.Background(), dbURL, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	return dbURL, db
}

// waitDrained waits until no delivery is left unfinished (10 minutes at
// most).
func waitDrained(b *testing.B, db *store.DB) {
	deadline := time.Now().Add(10 * time.Minute)
	for queued(b, db) > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d delivered", delivered(b, db), b.N)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queued counts the unfinished deliveries (through the queue's index).
func queued(b *testing.B, db *store.DB) int {
	var n int
	if err := db.Pool().QueryRow(context.Background(), `SELECT count(*) FROM deliveries WHERE final_state IS NULL`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// processCPU is the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func delivered(b *testing.B, db *store.DB) int {
	var n int
	if err := db.Pool().QueryRow(context.Background(), `SELECT count(*) FROM deliveries WHERE state = 'delivered'`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkDrainOneRecipient queues b.N deliveries for one recipient
// (written straight to the store), then lets the relay deliver them, one
// message per delivery and with coalescing, and reports the overall rate
// and the slowest whole second of the drain (deliveries the simulator
// accepted in it), so a slow start or a slump shows.
func BenchmarkDrainOneRecipient(b *testing.B) {
	for _, coalesce := range []bool{false, true} {
		b.Run(fmt.Sprintf("coalesce=%v", coalesce), func(b *testing.B) {
			sim := newSim(b)
			dbURL, db := benchStore(b)
			queueDirect(b, db, b.N, func(int) string { return "sip:oncall@contoso.com" })
			yaml := deliveryYAML(sim, "") + "\n"
			if !coalesce {
				yaml = oneByOne(yaml)
			}
			b.ResetTimer()
			start := time.Now()
			r := startRelay(b, dbURL, yaml)
			waitDrained(b, db)
			elapsed := time.Since(start)
			b.StopTimer()
			r.stop()
			msgs := sim.Messages()
			first := msgs[0].Time
			perSecond := map[int]int{}
			last, copies := 0, 0
			for _, m := range msgs {
				n := 1
				if sections, ok := deliver.Sections(m.Body); ok {
					n = len(sections)
				}
				copies += n
				s := int(m.Time.Sub(first) / time.Second)
				perSecond[s] += n
				last = max(last, s)
			}
			if copies < b.N {
				b.Fatalf("the simulator got %d deliveries' texts, want %d", copies, b.N)
			}
			slowest := b.N
			for s := 0; s < last; s++ { // the last second is partial
				slowest = min(slowest, perSecond[s])
			}
			var gaps []string
			for i := 1; i < len(msgs); i++ {
				if d := msgs[i].Time.Sub(msgs[i-1].Time); d > 200*time.Millisecond {
					gaps = append(gaps, fmt.Sprintf("%d:%v", i, d.Round(time.Millisecond)))
				}
			}
			b.Logf("deliveries per second: %v; gaps over 200ms: %v", perSecond, gaps)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(slowest), "slowest-second-msgs")
			b.ReportMetric(float64(len(msgs)), "messages")
			b.ReportMetric(float64(msgs[0].Time.Sub(start).Milliseconds()), "first-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// oneByOne turns coalescing off on deliveryYAML's prod and oncall-only
// routes: the benchmarks of the one-message-per-delivery path measure it
// whatever the backlog.
func oneByOne(yaml string) string {
	for _, conv := range []string{"[oncall, dba]", "[oncall]"} {
		line := "    conversations: " + conv + "\n"
		if !strings.Contains(yaml, line) {
			panic("oneByOne: deliveryYAML has no route with conversations " + conv)
		}
		yaml = strings.Replace(yaml, line, line+"    delivery: { coalesce: false }\n", 1)
	}
	return yaml
}

// BenchmarkBurst: b.N rounds of 1,000 alert groups firing at once (one
// webhook each, from 32 senders) on a route to three people, through the
// simulator at its production timers. It reports the time from the last
// 202 until every delivery is delivered, with coalescing on (the default)
// and off, and how many messages the three people got.
func BenchmarkBurst(b *testing.B) {
	for _, coalesce := range []bool{true, false} {
		b.Run(fmt.Sprintf("coalesce=%v", coalesce), func(b *testing.B) {
			sim, err := ucwasim.New(ucwasim.Config{Password: simPassword, EmbedResources: true})
			if err != nil {
				b.Fatal(err)
			}
			defer sim.Close()
			dbURL, db := benchStore(b)
			r := startRelay(b, dbURL, relaytest.UCWAYAML(sim.DiscoveryURLs())+fmt.Sprintf(`
conversations:
  anna:  { to: "sip:anna@contoso.com" }
  ben:   { to: "sip:ben@contoso.com" }
  chloe: { to: "sip:chloe@contoso.com" }
routes:
  - name: burst
    format: alertmanager
    conversations: [anna, ben, chloe]
    delivery: { coalesce: %v }
`, coalesce))
			defer r.stop()
			r.waitFinal(30*time.Second, r.postTo("burst", relaytest.Notification("Warmup", 1, "firing"))...)

			const groups, senders = 1000, 32
			var afterLast, total time.Duration
			messages := 0
			b.ResetTimer()
			for round := range b.N {
				before := len(sim.Messages())
				start := time.Now()
				var wg sync.WaitGroup
				next := make(chan int)
				for range senders {
					wg.Go(func() {
						for i := range next {
							r.postTo("burst", relaytest.Notification(fmt.Sprintf("Burst%d-%04d", round, i), 1, "firing"))
						}
					})
				}
				for i := range groups {
					next <- i
				}
				close(next)
				wg.Wait()
				lastAccepted := time.Now()
				waitDrained(b, db)
				afterLast += time.Since(lastAccepted)
				total += time.Since(start)
				messages += len(sim.Messages()) - before
			}
			b.StopTimer()
			if n := delivered(b, db); n != 3*(groups*b.N+1) {
				b.Fatalf("%d delivered, want %d", n, 3*(groups*b.N+1))
			}
			b.ReportMetric(afterLast.Seconds()/float64(b.N), "s-after-last-202")
			b.ReportMetric(total.Seconds()/float64(b.N), "s-total")
			b.ReportMetric(float64(messages)/float64(b.N), "messages")
			b.ReportMetric(0, "ns/op")
		})
	}
}
