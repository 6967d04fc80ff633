package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skype-relay/relay/relay/deliver"
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
	// Combined counts messages that carried several deliveries
	// (coalescing under a backlog); their deliveries count as arriving
	// with them.
	Combined int `json:"combined"`
}

// maxConns bounds the connections the open loop keeps; a request finding
// them all busy waits for one (and counts as late).
const maxConns = 256

// runRate sends webhooks at a fixed rate for d, each on a free connection
// (open loop: a slow answer does not slow the next request), keeps each
// 202's operationIds and time, then reads the simulator's record of the
// messages and reports the latency from 202 to the message reaching the
// server, as a user waiting for the chat feels it.
func runRate(u *url.URL, token string, rate float64, d time.Duration, bs *bodies, sim, trace string) int {
	su, err := url.Parse(sim)
	if err != nil || sim == "" || !isLoopback(su.Hostname()) {
		fmt.Fprintln(os.Stderr, "relay-load: -rate needs -sim, the simulator's control URL on a loopback address")
		return 2
	}
	groupRE := regexp.MustCompile(`G` + bs.run + `-[0-9]{9}`)
	free := make(chan *sender, maxConns)
	for range maxConns {
		free <- &sender{addr: u.Host, path: u.RequestURI(), host: u.Host, token: token, keep: true}
	}
	var mu sync.Mutex
	accepted := map[string]time.Time{} // operationId → when its 202 came
	groups := map[string][]string{}    // a body's group name → its operationIds
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
			groups[bs.group(int64(i))] = ans.OperationIDs
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for len(free) > 0 {
		(<-free).close()
	}

	// The simulator's record: wait until every accepted message is there.
	var lat []time.Duration
	var acceptedAt []time.Time // each latency's 202, for the trace
	res := RateResult{Rate: rate, Seconds: elapsed.Seconds(), Sent: n, Accepted: len(accepted), Errors: errs, Late: late}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		msgs, err := simMessages(su)
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay-load: read the simulator's messages:", err)
			return 1
		}
		lat = lat[:0]
		acceptedAt = acceptedAt[:0]
		seen := map[string]bool{}
		arrived := func(id string, at time.Time) {
			if t, ok := accepted[id]; ok && !seen[id] {
				seen[id] = true
				lat = append(lat, at.Sub(t))
				acceptedAt = append(acceptedAt, t)
			}
		}
		res.Combined = 0
		for _, m := range msgs {
			sections, ok := deliver.Sections(m.Body)
			if !ok {
				id, _, _ := strings.Cut(m.OperationID, ".")
				arrived(id, m.Time)
				continue
			}
			// A message carrying several: each section is the text of one
			// accepted delivery, found by its group name.
			res.Combined++
			for _, sec := range sections {
				ids := groups[groupRE.FindString(sec)]
				if i := slices.IndexFunc(ids, func(id string) bool { return !seen[id] }); i >= 0 {
					arrived(ids[i], m.Time)
				}
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
	if trace != "" {
		// ms from the start to the 202, latency in ms
		out := []byte("accepted_ms,latency_ms\n")
		for i, l := range lat {
			out = fmt.Appendf(out, "%.3f,%.3f\n", float64(acceptedAt[i].Sub(start).Microseconds())/1000, float64(l.Microseconds())/1000)
		}
		if err := os.WriteFile(trace, out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "relay-load:", err)
			return 1
		}
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
	Body        string
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
