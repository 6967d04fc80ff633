package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/relaytest"
)

// TestWebhookInflightLimit sends ten big webhooks at once, each with only
// half its body, to a relay holding at most three such bodies: three are
// taken and wait for the rest of their bodies, and the seven others are
// answered 503 with Retry-After there and then, before their bodies were
// even sent in full. Once the bodies are complete, the three are stored and
// answered 2xx, the database holds exactly those three, and the refused
// senders' connections still serve the next request.
func TestWebhookInflightLimit(t *testing.T) {
	t.Parallel()
	bodies := make([][]byte, 10)
	for i := range bodies {
		bodies[i] = relaytest.Notification(fmt.Sprintf("big-%02d", i), 50, "firing")
	}
	size := int64(len(bodies[0]))
	b := setup(t, func(cfg *ingest.Config) {
		cfg.MaxBodyBytes = 2 * size
		cfg.MaxInflightBytes = 3*size + size/2
	})

	conns := make([]*rawConn, len(bodies))
	for i, body := range bodies {
		conns[i] = dialRaw(t, b.srv.URL)
		conns[i].send(t, webhookHead("secured", routeToken, len(body)), body[:len(body)/2])
	}
	const taken = 3
	refused := len(bodies) - taken
	waitFor(t, "the refusals", func() bool { return answered(conns) == refused })
	if got, want := metricValue(t, b.reg, "relay_ingest_inflight_bytes"), float64(taken*size); got != want {
		t.Errorf("relay_ingest_inflight_bytes = %v while three bodies are read, want %v", got, want)
	}
	for _, c := range conns {
		if a := c.answer(); a != nil {
			if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || a.body["error"] == "" {
				t.Errorf("refused before its body was sent: %d %v %v, want 503 with Retry-After and an error", a.status, a.header, a.body)
			}
		}
	}

	for i, c := range conns {
		c.send(t, bodies[i][len(bodies[i])/2:])
	}
	waitFor(t, "every answer", func() bool { return answered(conns) == len(conns) })
	var acked []string
	for _, c := range conns {
		a := c.answer()
		switch a.status {
		case http.StatusAccepted:
			acked = append(acked, a.body["notificationId"].(string))
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("answer %d %v, want 202 or 503", a.status, a.body)
		}
	}
	if len(acked) != taken {
		t.Errorf("%d webhooks accepted, want %d", len(acked), taken)
	}
	stored := storedNotifications(t, b)
	slices.Sort(acked)
	if !slices.Equal(stored, acked) {
		t.Errorf("stored notifications %v, want exactly the accepted ones %v", stored, acked)
	}
	if got := metricValue(t, b.reg, "relay_ingest_inflight_rejected_total"); got != float64(refused) {
		t.Errorf("relay_ingest_inflight_rejected_total = %v, want %d", got, refused)
	}
	if got := testutilCounter(t, b, "secured", "overloaded"); got != float64(refused) {
		t.Errorf(`relay_webhooks_received_total{result="overloaded"} = %v, want %d`, got, refused)
	}
	if got := metricValue(t, b.reg, "relay_ingest_inflight_bytes"); got != 0 {
		t.Errorf("relay_ingest_inflight_bytes = %v once all are answered, want 0", got)
	}

	// A refused sender's connection was read to the end of its body, and
	// serves its retry.
	for _, c := range conns {
		if c.answer().status != http.StatusServiceUnavailable {
			continue
		}
		retry := relaytest.Notification("retry", 1, "firing")
		c.reset()
		c.send(t, webhookHead("secured", routeToken, len(retry)), retry)
		waitFor(t, "the answer to the retry", func() bool { return c.answer() != nil })
		if a := c.answer(); a.status != http.StatusAccepted {
			t.Errorf("retry on the refused connection: %d %v, want 202", a.status, a.body)
		}
		break
	}
}

// TestWebhookRefusalReachesClosingSenders: senders that ask for their
// connection to be closed after the answer (Connection: close), refused
// while their bodies are still being sent, all get their 503. Closing a
// connection with a body unread ends in a reset that Go's client, like
// others, may take for the answer.
func TestWebhookRefusalReachesClosingSenders(t *testing.T) {
	t.Parallel()
	// Bodies of 350 kB: net/http reads what is left of a body up to 256 kB
	// itself, and closes the connection on more.
	body := relaytest.Notification("big-xxx", 600, "firing") // as long as the others
	size := int64(len(body))
	// The held request waits for all the others: time enough for that.
	b := setupWith(t, bundleOptions{requestTimeout: time.Minute}, func(cfg *ingest.Config) {
		cfg.MaxBodyBytes = size
		cfg.MaxInflightBytes = size
	})
	// One request holds all there is to hold until its body is complete.
	holder := dialRaw(t, b.srv.URL)
	holder.send(t, webhookHead("secured", routeToken, len(body)), body[:len(body)/2])
	waitFor(t, "the first body to be held", func() bool {
		return metricValue(t, b.reg, "relay_ingest_inflight_bytes") == float64(size)
	})

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	const senders = 100
	errs := make(chan error, senders)
	for i := range senders {
		go func() {
			other := relaytest.Notification(fmt.Sprintf("big-%03d", i), 600, "firing")
			req, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/v1/webhooks/secured", bytes.NewReader(other))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+routeToken)
			resp, err := client.Do(req)
			if err != nil {
				errs <- fmt.Errorf("no answer: %w", err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				err = fmt.Errorf("answer %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			errs <- err
		}()
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	holder.send(t, body[len(body)/2:])
	waitFor(t, "the held request's answer", func() bool { return holder.answer() != nil })
	if a := holder.answer(); a.status != http.StatusAccepted {
		t.Errorf("the held request: %d %v, want 202", a.status, a.body)
	}
}

func webhookHead(route, token string, length int) []byte {
	return fmt.Appendf(nil, "POST /v1/webhooks/%s HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", route, token, length)
}

// rawConn is an HTTP/1.1 connection written by hand, so that a test can
// send part of a body and see what comes back meanwhile.
type rawConn struct {
	conn    net.Conn
	answers chan *rawAnswer
	got     *rawAnswer
}

type rawAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

func dialRaw(t *testing.T, base string) *rawConn {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{conn: conn, answers: make(chan *rawAnswer, 8)}
	go c.read()
	return c
}

// read passes on each answer; one that does not come as HTTP is reported
// with status 0.
func (c *rawConn) read() {
	r := bufio.NewReader(c.conn)
	for {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			c.answers <- &rawAnswer{}
			return
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a := &rawAnswer{status: resp.StatusCode, header: resp.Header}
		_ = json.Unmarshal(raw, &a.body)
		c.answers <- a
	}
}

func (c *rawConn) send(t *testing.T, parts ...[]byte) {
	t.Helper()
	for _, p := range parts {
		if _, err := c.conn.Write(p); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// answer is the answer received since the last reset, or nil.
func (c *rawConn) answer() *rawAnswer {
	if c.got == nil {
		select {
		case c.got = <-c.answers:
		default:
		}
	}
	return c.got
}

func (c *rawConn) reset() { c.got = nil }

func answered(conns []*rawConn) int {
	n := 0
	for _, c := range conns {
		if c.answer() != nil {
			n++
		}
	}
	return n
}

// metricValue is the value of the unlabelled gauge or counter name.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// storedNotifications lists the ids of the notifications in the database.
func storedNotifications(t *testing.T, b testBundle) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := b.db.Pool().Query(ctx, "SELECT id FROM notifications ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
