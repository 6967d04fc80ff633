package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/deliver"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

// sender posts webhooks the way Alertmanager does: a 503 or a connection
// error is retried until a 2xx answer (or the context ends); any other
// answer is final.
type sender struct {
	t      *testing.T
	target atomic.Pointer[string] // base URL of the relay to post to
	client *http.Client

	mu         sync.Mutex
	accepted   map[string]bool      // operationIds answered 2xx
	acceptedAt map[string]time.Time // when each was answered
	statuses   map[int]int          // every answer's status
	connErrs   int
}

func newSender(t *testing.T, base string) *sender {
	s := &sender{t: t, accepted: map[string]bool{}, acceptedAt: map[string]time.Time{}, statuses: map[int]int{},
		client: &http.Client{Timeout: 15 * time.Second}}
	s.point(base)
	return s
}

// point makes later tries go to base.
func (s *sender) point(base string) { s.target.Store(&base) }

// post sends one notification until it is accepted and returns its
// operationIds; nil when it was refused for good or ctx ended (the test
// has failed then).
func (s *sender) post(ctx context.Context, route string, body []byte) []string {
	for {
		ids, status, err := s.try(ctx, route, body)
		s.mu.Lock()
		if err != nil {
			s.connErrs++
		} else {
			s.statuses[status]++
		}
		if status/100 == 2 {
			now := time.Now()
			for _, id := range ids {
				s.accepted[id] = true
				if _, ok := s.acceptedAt[id]; !ok {
					s.acceptedAt[id] = now
				}
			}
		}
		s.mu.Unlock()
		switch {
		case status/100 == 2:
			return ids
		case err == nil && status != http.StatusServiceUnavailable:
			s.t.Errorf("POST %s = %d: a final refusal, want 2xx or 503", route, status)
			return nil
		}
		select {
		case <-ctx.Done():
			s.t.Errorf("POST %s: not accepted before the deadline (last: %d, %v)", route, status, err)
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *sender) try(ctx context.Context, route string, body []byte) ([]string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *s.target.Load()+"/v1/webhooks/"+route, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var out struct {
		OperationIDs []string `json:"operationIds"`
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, &out); err != nil || len(out.OperationIDs) == 0 {
			s.t.Errorf("POST %s = %d with body %q: want operationIds", route, resp.StatusCode, b)
		}
	}
	return out.OperationIDs, resp.StatusCode, nil
}

// stream posts n notifications, each a distinct alert group with one
// alert, round robin over the routes, from workers goroutines, each
// pausing pace between posts. Group names start with prefix. It returns
// the operationIds of every accepted post.
func (s *sender) stream(ctx context.Context, prefix string, n, workers int, pace time.Duration) []string {
	return s.streamUntil(ctx, nil, prefix, n, workers, pace)
}

// streamUntil is stream, ending also once stop is closed (a post under
// way is finished first).
func (s *sender) streamUntil(ctx context.Context, stop <-chan struct{}, prefix string, n, workers int, pace time.Duration) []string {
	var (
		mu  sync.Mutex
		ids []string
		wg  sync.WaitGroup
	)
	next := atomic.Int64{}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil || stopped() {
					return
				}
				route := routes[i%len(routes)].name
				got := s.post(ctx, route, relaytest.Notification(fmt.Sprintf("%s-%04d", prefix, i), 1, "firing"))
				mu.Lock()
				ids = append(ids, got...)
				mu.Unlock()
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		})
	}
	wg.Wait()
	return ids
}

// streamAsync is stream in the background; wait returns its ids. The
// stream is stopped and waited for when the test ends, so no post reports
// into a finished test.
func (s *sender) streamAsync(ctx context.Context, prefix string, n, workers int, pace time.Duration) (wait func() []string) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var ids []string
	go func() {
		defer close(done)
		ids = s.stream(ctx, prefix, n, workers, pace)
	}()
	s.t.Cleanup(func() {
		cancel()
		<-done
	})
	return func() []string {
		<-done
		return ids
	}
}

// streamOpen is streamAsync without an end of its own: it posts until
// stop is called (or ctx ends), which waits for the posts under way and
// returns the ids. For a test whose stream must outlast an event however
// slowly the machine gets there.
func (s *sender) streamOpen(ctx context.Context, prefix string, workers int, pace time.Duration) (stop func() []string) {
	ctx, cancel := context.WithCancel(ctx)
	halt := make(chan struct{})
	done := make(chan struct{})
	var ids []string
	go func() {
		defer close(done)
		ids = s.streamUntil(ctx, halt, prefix, 1<<30, workers, pace)
	}()
	var once sync.Once
	end := func() { once.Do(func() { close(halt) }) }
	s.t.Cleanup(func() {
		end()
		cancel()
		<-done
	})
	return func() []string {
		end()
		<-done
		return ids
	}
}

// acceptedIDs returns every operationId answered 2xx so far, sorted.
func (s *sender) acceptedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.accepted))
	for id := range s.accepted {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (s *sender) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("statuses %v, connection errors %d, operationIds accepted %d", s.statuses, s.connErrs, len(s.accepted))
}

// deliveryView is what GET /v1/deliveries/{id} says of a delivery.
type deliveryView struct {
	OperationID string        `json:"operationId"`
	State       string        `json:"state"`
	Text        string        `json:"text"`
	Recipient   string        `json:"recipient"`
	Attempts    int           `json:"attempts"`
	Failures    int           `json:"failures"`
	Unconfirmed int           `json:"unconfirmed"`
	LastError   string        `json:"lastError"`
	DeliveredAt *time.Time    `json:"deliveredAt"`
	AttemptLog  []attemptView `json:"attemptLog"`
}

type attemptView struct {
	Attempt         int    `json:"attempt"`
	Outcome         string `json:"outcome"`
	Pool            string `json:"pool"`
	UCWAOperationID string `json:"ucwaOperationId"`
	Reason          string `json:"reason"`
	CarriedBy       string `json:"carriedBy"`
}

func (d deliveryView) final() bool { return d.State != "pending" && d.State != "sending" }

func getDelivery(client *http.Client, base, id string) (deliveryView, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/v1/deliveries/"+id, nil)
	if err != nil {
		return deliveryView{}, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := client.Do(req)
	if err != nil {
		return deliveryView{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return deliveryView{}, fmt.Errorf("GET delivery %s = %d %s", id, resp.StatusCode, b)
	}
	var d deliveryView
	if err := json.Unmarshal(b, &d); err != nil {
		return deliveryView{}, fmt.Errorf("decode delivery %s: %w", id, err)
	}
	return d, nil
}

// waitFinal polls the relay at base until every id is in a final state and
// returns what it says of each; it fails the test after timeout.
func waitFinal(t *testing.T, base string, ids []string, timeout time.Duration) map[string]deliveryView {
	t.Helper()
	return waitFinalWith(t, &http.Client{Timeout: 5 * time.Second}, base, ids, timeout)
}

// waitFinalWith is waitFinal asking through client (e.g. one that speaks TLS).
func waitFinalWith(t *testing.T, client *http.Client, base string, ids []string, timeout time.Duration) map[string]deliveryView {
	t.Helper()
	out := make(map[string]deliveryView, len(ids))
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		for _, id := range ids {
			if _, ok := out[id]; ok {
				continue
			}
			d, err := getDelivery(client, base, id)
			if err != nil {
				lastErr = err
				break
			}
			if !d.final() {
				break // its recipient's line is not done; look again later
			}
			out[id] = d
		}
		if len(out) == len(ids) {
			return out
		}
		if time.Now().After(deadline) {
			states := map[string]int{}
			for _, id := range ids {
				if d, ok := out[id]; ok {
					states[d.State]++
				} else if d, err := getDelivery(client, base, id); err == nil {
					states[d.State]++
				}
			}
			t.Fatalf("deliveries not final after %s: %d of %d final; states %v; last error %v", timeout, len(out), len(ids), states, lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// messagesByDelivery groups the simulator's messages by delivery (see
// attribute).
func messagesByDelivery(sim *ucwasim.Sim, views map[string]deliveryView) map[string][]ucwasim.Message {
	return attribute(sim.Messages(), views)
}

// attribute groups msgs by the delivery each copy belongs to. A message of
// its own belongs to the delivery its OperationID names
// ("<delivery operationId>.<attempt>"). A combined message (coalescing) is
// split into its sections, each attributed, as its own copy with the
// section as Body, to the delivery of views with that recipient and text
// (the "(resent) " mark aside), preferring one whose attempts name the
// message. A section no delivery claims stays under the sending delivery's
// id, where checkDelivered reports it.
func attribute(msgs []ucwasim.Message, views map[string]deliveryView) map[string][]ucwasim.Message {
	type key struct{ to, text string }
	byText := map[key][]string{}
	for id, d := range views {
		k := key{strings.ToLower(d.Recipient), d.Text}
		byText[k] = append(byText[k], id)
	}
	out := map[string][]ucwasim.Message{}
	for _, m := range msgs {
		id := m.OperationID
		if i := strings.LastIndexByte(id, '.'); i >= 0 {
			id = id[:i]
		}
		sections, ok := deliver.Sections(m.Body)
		if !ok {
			out[id] = append(out[id], m)
			continue
		}
		to := strings.ToLower("sip:" + strings.TrimPrefix(m.Recipient, "sip:"))
		taken := map[string]bool{} // deliveries given a section of this message
		for _, sec := range sections {
			c := m
			c.Body = sec
			owner, best := id, -1
			for _, cand := range byText[key{to, strings.TrimPrefix(sec, deliver.ResentMarker)}] {
				if taken[cand] {
					continue // twins in one message are two deliveries
				}
				score := 0
				if slices.ContainsFunc(views[cand].AttemptLog, func(a attemptView) bool { return a.UCWAOperationID == m.OperationID }) {
					score = 1
				}
				if score > best || score == best && cand < owner {
					owner, best = cand, score
				}
			}
			taken[owner] = true
			out[owner] = append(out[owner], c)
		}
	}
	return out
}

// outcome sums up what the simulator received for a set of deliveries.
type outcome struct {
	duplicates int // deliveries with more than one message
	extra      int // messages beyond the first of each delivery
	resentOnly int // deliveries whose one message is marked resent
	combined   int // messages carrying several deliveries (coalescing)
	carried    int // copies those carried
}

// checkDelivered asserts the end-to-end promise for every accepted
// delivery: it is delivered, the simulator has at least one message for it
// with its text (to its recipient), and every copy after the first is
// marked "(resent) ". It also asserts the simulator has no message that
// belongs to no accepted delivery.
func checkDelivered(t *testing.T, sim *ucwasim.Sim, views map[string]deliveryView) outcome {
	t.Helper()
	var o outcome
	byID := messagesByDelivery(sim, views)
	for _, m := range sim.Messages() {
		if sections, ok := deliver.Sections(m.Body); ok {
			o.combined++
			o.carried += len(sections)
		}
	}
	if o.combined > 0 {
		t.Logf("%d combined messages carried %d copies", o.combined, o.carried)
	}
	for id, d := range views {
		if d.State != "delivered" {
			t.Errorf("delivery %s is %s (%s), want delivered", id, d.State, d.LastError)
		}
		msgs := byID[id]
		if len(msgs) == 0 {
			t.Errorf("delivery %s (%s): the simulator never received it", id, d.State)
			continue
		}
		for k, m := range msgs {
			if m.Body != d.Text && m.Body != deliver.ResentMarker+d.Text {
				t.Errorf("delivery %s message %s: body %q, want its text %q (maybe marked resent)", id, m.OperationID, m.Body, d.Text)
			}
			if !strings.EqualFold("sip:"+strings.TrimPrefix(m.Recipient, "sip:"), d.Recipient) {
				t.Errorf("delivery %s message %s went to %s, want %s", id, m.OperationID, m.Recipient, d.Recipient)
			}
			if k > 0 && !strings.HasPrefix(m.Body, deliver.ResentMarker) {
				t.Errorf("delivery %s: copy %d (%s) is an unmarked duplicate: %q", id, k+1, m.OperationID, m.Body)
			}
		}
		if len(msgs) > 1 {
			o.duplicates++
			o.extra += len(msgs) - 1
		} else if strings.HasPrefix(msgs[0].Body, deliver.ResentMarker) {
			o.resentOnly++
		}
	}
	for id, msgs := range byID {
		if _, ok := views[id]; !ok {
			t.Errorf("the simulator received %d message(s) for %s, which no accepted webhook created: %q", len(msgs), id, msgs[0].Body)
		}
	}
	return o
}

func assertNoViolations(t *testing.T, sim *ucwasim.Sim) {
	t.Helper()
	for _, v := range sim.Violations() {
		t.Errorf("UCWA protocol violation: %s %s: %s (%s)", v.Method, v.Path, v.Rule, v.Detail)
	}
}

// waitMessages waits until the simulator has accepted at least n messages.
func waitMessages(t *testing.T, sim *ucwasim.Sim, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(sim.Messages()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the simulator has %d messages after %s, want at least %d", len(sim.Messages()), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessionHeld reads relay_session_held from the relay's metrics: 1 when it
// holds the bot account's session lease. ok is false when the relay does
// not answer or the metric is missing.
func sessionHeld(base string) (held, ok bool) {
	v, ok := metric(base, "relay_session_held")
	return v == 1, ok
}

// metric reads one series from the relay's /metrics, written as in the
// exposition format, e.g. `relay_ucwa_session_state{state="stopped"}`. ok
// is false when the relay does not answer or the series is missing.
func metric(base, series string) (float64, bool) {
	for _, line := range scrape(base) {
		name, value, found := strings.Cut(line, " ")
		if !found || name != series {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		return v, err == nil
	}
	return 0, false
}

// sessionState returns the state relay_ucwa_session_state reports as 1.
func sessionState(base string) string {
	const prefix = `relay_ucwa_session_state{state="`
	for _, line := range scrape(base) {
		if rest, ok := strings.CutPrefix(line, prefix); ok && strings.HasSuffix(line, "} 1") {
			state, _, _ := strings.Cut(rest, `"`)
			return state
		}
	}
	return ""
}

// scrape returns the lines of the relay's /metrics (none when it does not
// answer).
func scrape(base string) []string {
	client := &http.Client{Timeout: 15 * time.Second} // a loaded machine may be slow; a dead relay refuses at once
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// waitAcceptedAfter waits until s has had at least n deliveries accepted
// after from, failing t after within.
func waitAcceptedAfter(t *testing.T, s *sender, from time.Time, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		got := 0
		for _, at := range s.acceptedAt {
			if at.After(from) {
				got++
			}
		}
		s.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries accepted in the %s after %s, want %d (%s)", got, within, from.Format(time.StampMilli), n, s.summary())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
