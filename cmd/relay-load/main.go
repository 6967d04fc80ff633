// Command relay-load drives POST /v1/webhooks/{route} with realistic
// Alertmanager notifications, every one distinct (so none is deduplicated),
// and reports what the relay answered. Loopback only: it refuses other
// targets.
//
// By default a fixed number of concurrent senders post for a while and it
// reports requests per second and latency percentiles. Each sender keeps
// one HTTP/1.1 connection and writes its requests and reads the answers on
// it directly, as pgbench keeps one connection per client: net/http's
// client runs two goroutines per connection and would spend more CPU than
// the relay it measures, on the same cores.
//
// With -burst N it instead sends N requests at once, each on a connection
// of its own, counts the answers by status (and the connections closed
// without one) and, given -db, checks that the database holds exactly the
// notifications that were answered 2xx (see burst.go).
//
//	relay-load -url http://127.0.0.1:9095/v1/webhooks/prod -c 8 -d 10s
//	relay-load -url http://127.0.0.1:9095/v1/webhooks/prod -burst 150 -size 1048576 -db "$DATABASE_URL"
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
	"strings"
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
	BodyBytes   int     `json:"body_bytes"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	// Status counts the answers by HTTP status; NoAnswer the requests
	// whose connection failed before an answer came.
	Status   map[string]int `json:"status"`
	NoAnswer int            `json:"no_answer"`
}

func run() int {
	target := flag.String("url", "http://127.0.0.1:9095/v1/webhooks/prod", "webhook URL (loopback only)")
	conc := flag.Int("c", 8, "concurrent senders")
	dur := flag.Duration("d", 10*time.Second, "how long to send")
	maxReq := flag.Int("n", 5_000_000, "stop after this many requests in all")
	alerts := flag.Int("alerts", 3, "alerts per notification")
	size := flag.Int("size", 0, "pad each alert with an annotation so that a body is this many bytes (0: no padding)")
	token := flag.String("token", "", "bearer token for the route")
	burstN := flag.Int("burst", 0, "send this many requests at once, one connection each, and count the answers")
	dbURL := flag.String("db", "", "with -burst: the relay's database, checked to hold exactly the notifications answered 2xx")
	closeConns := flag.Bool("close", false, "with -burst: send Connection: close with every request")
	rate := flag.Float64("rate", 0, "open loop: send this many requests per second for -d, whatever the answers take, and measure each message from its 202 to the simulator's record (needs -sim)")
	simURL := flag.String("sim", "", "with -rate: the UCWA simulator's control address, e.g. http://127.0.0.1:18443")
	trace := flag.String("trace", "", "with -rate: write each delivery's 202 time and latency to this CSV file (to find when a slow one came)")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || !isLoopback(u.Hostname()) {
		fmt.Fprintln(os.Stderr, "relay-load: -url must be an http URL on a loopback address")
		return 2
	}
	bodies, err := newBodies(*alerts, *size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay-load:", err)
		return 2
	}
	if *burstN > 0 {
		return runBurst(u, *token, *burstN, bodies, *dbURL, *closeConns)
	}
	if *rate > 0 {
		return runRate(u, *token, *rate, *dur, bodies, *simURL, *trace)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var next atomic.Int64
	var errs, noAnswer atomic.Int64
	lat := make([][]time.Duration, *conc)
	statuses := make([]map[int]int, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *conc {
		statuses[w] = map[int]int{}
		wg.Go(func() {
			s := &sender{addr: u.Host, path: u.RequestURI(), host: u.Host, token: *token}
			defer s.close()
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(*maxReq) {
					return
				}
				t0 := time.Now()
				status, err := s.post(bodies.body(i))
				if status != 0 {
					statuses[w][status]++
				}
				if err == nil && status != http.StatusAccepted {
					err = errors.New("unexpected status " + strconv.Itoa(status))
				}
				if err != nil {
					if status == 0 {
						noAnswer.Add(1)
					}
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
	res := Result{Concurrency: *conc, BodyBytes: bodies.size, Requests: len(all), Errors: int(errs.Load()),
		Seconds: elapsed.Seconds(), RPS: float64(len(all)) / elapsed.Seconds(), P50ms: pct(all, 0.50),
		P99ms: pct(all, 0.99), Status: map[string]int{}, NoAnswer: int(noAnswer.Load())}
	for _, m := range statuses {
		for code, n := range m {
			res.Status[strconv.Itoa(code)] += n
		}
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Errors > 0 {
		return 1
	}
	return 0
}

// bodies makes the notifications: one payload shape, with a group name
// unique to the run and the request, so each one is new content for the
// deduplication. Names have one width, so every body has the same size.
type bodies struct {
	tmpl []byte
	run  string
	size int
}

// marker is the group name in the template, replaced in every body.
const marker = "RELAYLOADGROUP"

func newBodies(alerts, size int) (*bodies, error) {
	b := &bodies{run: strconv.FormatInt(time.Now().UnixNano(), 36)}
	b.tmpl = relaytest.Notification(marker, alerts, "firing")
	if pad := size - len(b.body(0)); size > 0 {
		if pad < 0 {
			return nil, fmt.Errorf("-size %d is below %d alerts' notification (%d bytes)", size, alerts, len(b.body(0)))
		}
		var err error
		if b.tmpl, err = padAlerts(b.tmpl, pad); err != nil {
			return nil, err
		}
	}
	b.size = len(b.body(0))
	return b, nil
}

// padAlerts adds a "details" annotation to every alert of the notification
// msg, making it pad bytes longer in all (or as near as the alerts allow).
func padAlerts(msg []byte, pad int) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, err
	}
	alerts, _ := m["alerts"].([]any)
	const key = `,"details":""`
	per := pad/len(alerts) - len(key)
	if per < 0 {
		return msg, nil
	}
	extra := pad - len(alerts)*(per+len(key))
	for i, a := range alerts {
		n := per
		if i < extra {
			n++
		}
		a.(map[string]any)["annotations"].(map[string]any)["details"] = strings.Repeat("x", n)
	}
	return json.Marshal(m)
}

func (b *bodies) body(i int64) []byte { return b.expand(b.tmpl, i) }

func (b *bodies) expand(tmpl []byte, i int64) []byte {
	return bytes.ReplaceAll(tmpl, []byte(marker), []byte(b.group(i)))
}

// group is the group name of body i: unique to the run and the request.
func (b *bodies) group(i int64) string { return fmt.Sprintf("G%s-%09d", b.run, i) }

// sender posts over one kept-alive connection, dialling again when the
// relay closes it.
type sender struct {
	addr, path, host, token string
	conn                    net.Conn
	r                       *bufio.Reader
	head                    bytes.Buffer
	// keep: the answer's body is kept in last (the rate mode reads the
	// operationIds from it).
	keep bool
	last []byte
}

// post sends body and returns the status of the answer (0 when none came).
func (s *sender) post(body []byte) (int, error) {
	if s.conn == nil {
		c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		s.conn, s.r = c, bufio.NewReaderSize(c, 4096)
	}
	if err := s.conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, err
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
		return 0, err
	}
	resp, err := http.ReadResponse(s.r, nil)
	if err != nil {
		s.close()
		return 0, err
	}
	if s.keep {
		s.last, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil || resp.Close {
		s.close()
	}
	return resp.StatusCode, err
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
