// Command relay-load drives POST /v1/webhooks/{route} with realistic
// Alertmanager notifications, every one distinct (so none is deduplicated),
// from a fixed number of concurrent senders, and reports requests per second
// and latency percentiles. Loopback only: it refuses other targets.
//
// Each sender keeps one HTTP/1.1 connection and writes its requests and
// reads the answers on it directly, as pgbench keeps one connection per
// client: net/http's client runs two goroutines per connection and would
// spend more CPU than the relay it measures, on the same cores.
//
//	relay-load -url http://127.0.0.1:9095/v1/webhooks/prod -c 8 -d 10s
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skype-relay/relay/relay/relaytest"
)

func main() {
	os.Exit(run())
}

// Result is one run's summary, printed as a JSON line.
type Result struct {
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
}

func run() int {
	target := flag.String("url", "http://127.0.0.1:9095/v1/webhooks/prod", "webhook URL (loopback only)")
	conc := flag.Int("c", 8, "concurrent senders")
	dur := flag.Duration("d", 10*time.Second, "how long to send")
	maxReq := flag.Int("n", 5_000_000, "stop after this many requests in all")
	alerts := flag.Int("alerts", 3, "alerts per notification")
	token := flag.String("token", "", "bearer token for the route")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || !isLoopback(u.Hostname()) {
		fmt.Fprintln(os.Stderr, "relay-load: -url must be an http URL on a loopback address")
		return 2
	}
	// One payload shape; a unique group name per request makes each one new
	// content for the deduplication.
	const marker = "RELAYLOADGROUP"
	tmpl := relaytest.Notification(marker, *alerts, "firing")
	run := strconv.FormatInt(time.Now().UnixNano(), 36)

	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var next atomic.Int64
	var errs atomic.Int64
	lat := make([][]time.Duration, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *conc {
		wg.Go(func() {
			s := &sender{addr: u.Host, path: u.RequestURI(), host: u.Host, token: *token}
			defer s.close()
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(*maxReq) {
					return
				}
				body := bytes.ReplaceAll(tmpl, []byte(marker), []byte("G"+run+"-"+strconv.FormatInt(i, 10)))
				t0 := time.Now()
				if err := s.post(body); err != nil {
					if errs.Add(1) <= 5 {
						fmt.Fprintln(os.Stderr, "relay-load:", err)
					}
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := Result{Concurrency: *conc, Requests: len(all), Errors: int(errs.Load()), Seconds: elapsed.Seconds(),
		RPS: float64(len(all)) / elapsed.Seconds(), P50ms: pct(all, 0.50), P99ms: pct(all, 0.99)}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Errors > 0 {
		return 1
	}
	return 0
}

// sender posts over one kept-alive connection, dialling again when the
// relay closes it.
type sender struct {
	addr, path, host, token string
	conn                    net.Conn
	r                       *bufio.Reader
	head                    bytes.Buffer
}

func (s *sender) post(body []byte) error {
	if s.conn == nil {
		c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			return err
		}
		s.conn, s.r = c, bufio.NewReaderSize(c, 4096)
	}
	if err := s.conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	s.head.Reset()
	fmt.Fprintf(&s.head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n",
		s.path, s.host, len(body))
	if s.token != "" {
		fmt.Fprintf(&s.head, "Authorization: Bearer %s\r\n", s.token)
	}
	s.head.WriteString("\r\n")
	bufs := net.Buffers{s.head.Bytes(), body}
	if _, err := bufs.WriteTo(s.conn); err != nil {
		s.close()
		return err
	}
	resp, err := http.ReadResponse(s.r, nil)
	if err != nil {
		s.close()
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		s.close()
	}
	if resp.StatusCode != http.StatusAccepted {
		return errors.New("unexpected status " + resp.Status)
	}
	return err
}

func (s *sender) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(float64(len(sorted)-1)*p)].Microseconds()) / 1000
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
