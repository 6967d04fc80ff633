package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// RateResult is an open-loop run's summary, printed as a JSON line.
type RateResult struct {
	Rate     float64 `json:"rate"`
	Seconds  float64 `json:"seconds"`
	Sent     int     `json:"sent"`
	Accepted int     `json:"accepted"`
	Errors   int     `json:"errors"`
	// Late counts requests that left more than 5 ms after their time
	// (every connection busy): the schedule slipped, the load was lower.
	Late int `json:"late"`
	// Delivered counts accepted messages the simulator recorded; the
	// latencies are from the 202 to that record.
	Delivered    int     `json:"delivered"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	IngestP99ms  float64 `json:"ingest_p99_ms"`
	MissingAfter string  `json:"missing_after,omitempty"`
}

// maxConns bounds the connections the open loop keeps; a request finding
// them all busy waits for one (and counts as late).
const maxConns = 256

// runRate sends webhooks at a fixed rate for d, each on a free connection
// (open loop: a slow answer does not slow the next request), keeps each
// 202's operationIds and time, then reads the simulator's record of the
// messages and reports the latency from 202 to the message reaching the
// server, as a user waiting for the chat feels it.
func runRate(u *url.URL, token string, rate float64, d time.Duration, bs *bodies, sim string) int {
	su, err := url.Parse(sim)
	if err != nil || sim == "" || !isLoopback(su.Hostname()) {
		fmt.Fprintln(os.Stderr, "relay-load: -rate needs -sim, the simulator's control URL on a loopback address")
		return 2
	}
	free := make(chan *sender, maxConns)
	for range maxConns {
		free <- &sender{addr: u.Host, path: u.RequestURI(), host: u.Host, token: token, keep: true}
	}
	var mu sync.Mutex
	accepted := map[string]time.Time{} // operationId → when its 202 came
	var ingest []time.Duration
	var errs, late int
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	n := int(d.Seconds() * rate)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		s := <-free
		if time.Since(at) > 5*time.Millisecond {
			late++
		}
		wg.Go(func() {
			defer func() { free <- s }()
			t0 := time.Now()
			status, err := s.post(bs.body(int64(i)))
			done := time.Now()
			var ans struct {
				OperationIDs []string `json:"operationIds"`
			}
			if err == nil && status == http.StatusAccepted {
				err = json.Unmarshal(s.last, &ans)
			} else if err == nil {
				err = fmt.Errorf("status %d: %s", status, strings.TrimSpace(string(s.last)))
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if errs++; errs <= 5 {
					fmt.Fprintln(os.Stderr, "relay-load:", err)
				}
				return
			}
			ingest = append(ingest, done.Sub(t0))
			for _, id := range ans.OperationIDs {
				accepted[id] = done
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for len(free) > 0 {
		(<-free).close()
	}

	// The simulator's record: wait until every accepted message is there.
	var lat []time.Duration
	res := RateResult{Rate: rate, Seconds: elapsed.Seconds(), Sent: n, Accepted: len(accepted), Errors: errs, Late: late}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		msgs, err := simMessages(su)
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay-load: read the simulator's messages:", err)
			return 1
		}
		lat = lat[:0]
		for _, m := range msgs {
			id, _, _ := strings.Cut(m.OperationID, ".")
			if t, ok := accepted[id]; ok {
				lat = append(lat, m.Time.Sub(t))
			}
		}
		if len(lat) >= len(accepted) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(lat) < len(accepted) {
		res.MissingAfter = fmt.Sprintf("%d of %d messages not recorded after 2m", len(accepted)-len(lat), len(accepted))
	}
	slices.Sort(lat)
	slices.Sort(ingest)
	res.Delivered = len(lat)
	res.P50ms, res.P99ms, res.IngestP99ms = pct(lat, 0.50), pct(lat, 0.99), pct(ingest, 0.99)
	if len(lat) > 0 {
		res.MaxMs = float64(lat[len(lat)-1].Microseconds()) / 1000
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.MissingAfter != "" || errs > 0 {
		return 1
	}
	return 0
}

type simMessage struct {
	OperationID string
	Time        time.Time
}

func simMessages(base *url.URL) ([]simMessage, error) {
	resp, err := http.Get(base.JoinPath("/sim/messages").String())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /sim/messages: %s", resp.Status)
	}
	var msgs []simMessage
	err = json.NewDecoder(resp.Body).Decode(&msgs)
	return msgs, err
}
