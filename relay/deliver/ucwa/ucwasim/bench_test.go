package ucwasim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// BenchmarkConfirmedMessages measures the simulator's hot path: sendMessage,
// the completed event and the P-GET release, over 100 conversations of one
// application, one message in flight per conversation.
//
//	go test -run '^$' -bench ConfirmedMessages -benchtime 20000x ./relay/deliver/ucwa/ucwasim/
func BenchmarkConfirmedMessages(b *testing.B) {
	const convs = 100
	s, err := New(Config{EmbedResources: true, TimeScale: 0.01})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &client{t: b, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}, Timeout: 30 * time.Second}}
	apps := c.signIn(s.DiscoveryURLs()[0], "secret")
	a := c.createApp(apps, "bench")
	l := c.startLoop(a.events)

	cvs := make([]conv, convs)
	for i := range cvs {
		cvs[i] = c.startConversation(a, l, fmt.Sprintf("sip:user%d@contoso.com", i))
	}

	// Route completions to waiters by operationId.
	var mu sync.Mutex
	waiters := map[string]chan struct{}{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case e := <-l.events:
				if e.Link.Rel != "message" || e.Type != "completed" {
					continue
				}
				var m struct {
					OperationID string `json:"operationId"`
				}
				_ = json.Unmarshal(e.Embedded["message"], &m)
				mu.Lock()
				ch := waiters[m.OperationID]
				delete(waiters, m.OperationID)
				mu.Unlock()
				if ch != nil {
					close(ch)
				}
			case <-stop:
				return
			}
		}
	}()

	b.ResetTimer()
	start := time.Now()
	var sent sync.WaitGroup
	per := (b.N + convs - 1) / convs
	for i := range cvs {
		sent.Add(1)
		go func() {
			defer sent.Done()
			for j := 0; j < per; j++ {
				op := fmt.Sprintf("b-%d-%d", i, j)
				ch := make(chan struct{})
				mu.Lock()
				waiters[op] = ch
				mu.Unlock()
				r, err := c.doErr(b.Context(), "POST", cvs[i].sendMessage+"?operationId="+op, "text/plain; charset=utf-8", "benchmark message")
				if err != nil || r.status != http.StatusCreated {
					b.Errorf("send: %v %d", err, r.status)
					return
				}
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					b.Errorf("no completion for %s", op)
					return
				}
			}
		}()
	}
	sent.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(per*convs)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(s.Stats().MaxHighEventWait.Microseconds()), "max-event-wait-us")
	close(stop)
	wg.Wait()
	l.stop()
	if v := s.Violations(); len(v) != 0 {
		b.Fatalf("violations: %+v", v)
	}
}
