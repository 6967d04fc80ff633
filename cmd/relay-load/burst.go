package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// BurstResult is a burst's summary, printed as a JSON line.
type BurstResult struct {
	Requests  int     `json:"requests"`
	BodyBytes int     `json:"body_bytes"`
	Seconds   float64 `json:"seconds"`
	// Status counts the answers by HTTP status.
	Status map[string]int `json:"status"`
	// NoAnswer counts the connections that ended without an answer.
	NoAnswer int `json:"no_answer"`
	// NoRetryAfter counts the 503 answers without a Retry-After header.
	NoRetryAfter int `json:"no_retry_after"`
	// Stored is how many notifications the database holds, Acknowledged
	// how many of them were answered 2xx (with -db; -1 without).
	Stored       int `json:"stored"`
	Acknowledged int `json:"stored_acknowledged"`
	// OK: every request answered 2xx or 503 with Retry-After, and (with
	// -db) the database holds every 2xx notification and nothing else.
	OK bool `json:"ok"`
}

// runBurst sends n requests at once, each on a connection of its own, the
// way Alertmanager's senders arrive after a pause: all bodies are built
// first, every request waits at a start line, and net/http's client reads
// an early answer while the body is still being written (as Alertmanager's
// does), so an answer sent before the body was read counts as an answer.
//
// With closeConns, each request asks for its connection to be closed after
// the answer (Connection: close), as some senders do.
func runBurst(u *url.URL, token string, n int, b *bodies, dbURL string, closeConns bool) int {
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = b.body(int64(i))
	}
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableKeepAlives: closeConns, ResponseHeaderTimeout: 2 * time.Minute},
		Timeout:   3 * time.Minute,
	}
	type answer struct {
		status     int
		retryAfter bool
		id         string
		err        error
	}
	answers := make([]answer, n)
	startLine := make(chan struct{})
	var ready, done sync.WaitGroup
	for i := range n {
		ready.Add(1)
		done.Go(func() {
			req, err := http.NewRequest(http.MethodPost, u.String(), bytes.NewReader(payloads[i]))
			if err != nil {
				answers[i].err = err
				ready.Done()
				return
			}
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			ready.Done()
			<-startLine
			resp, err := client.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After") != ""}
			if resp.StatusCode/100 == 2 {
				var body struct {
					NotificationID string `json:"notificationId"`
				}
				_ = json.Unmarshal(raw, &body)
				a.id = body.NotificationID
			}
			answers[i] = a
		})
	}
	ready.Wait()
	start := time.Now()
	close(startLine)
	done.Wait()

	res := BurstResult{Requests: n, BodyBytes: b.size, Seconds: time.Since(start).Seconds(),
		Status: map[string]int{}, Stored: -1, Acknowledged: -1, OK: true}
	var acked []string
	shown := 0
	for _, a := range answers {
		switch {
		case a.err != nil:
			res.NoAnswer++
			if shown++; shown <= 5 {
				fmt.Fprintln(os.Stderr, "relay-load: no answer:", a.err)
			}
		case a.status/100 == 2:
			acked = append(acked, a.id)
		case a.status == http.StatusServiceUnavailable && !a.retryAfter:
			res.NoRetryAfter++
		}
		if a.err == nil {
			res.Status[strconv.Itoa(a.status)]++
			res.OK = res.OK && (a.status/100 == 2 || a.status == http.StatusServiceUnavailable)
		}
	}
	res.OK = res.OK && res.NoAnswer == 0 && res.NoRetryAfter == 0
	if dbURL != "" {
		stored, ackd, err := countStored(dbURL, acked)
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay-load: check the database:", err)
			return 1
		}
		res.Stored, res.Acknowledged = stored, ackd
		res.OK = res.OK && stored == len(acked) && ackd == len(acked)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if !res.OK {
		return 1
	}
	return 0
}

// countStored counts the notifications in the database, and those among
// them whose id is in acked.
func countStored(dbURL string, acked []string) (stored, ackd int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE id = ANY($1)) FROM notifications`, acked).
		Scan(&stored, &ackd)
	return stored, ackd, err
}
