package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

// These tests hold relay to its promise when the UCWA server or the
// database misbehave: nothing accepted is lost, nothing is duplicated
// unmarked, recovery takes seconds, and a failing host is not hammered.
// Those that say "production timers" run the relay with every UCWA and
// delivery timer at its default, as a new user's configuration would.

// newSimWith is newSim with a changed configuration.
func newSimWith(t *testing.T, change func(*ucwasim.Config)) *ucwasim.Sim {
	t.Helper()
	cfg := ucwasim.Config{Password: simPassword, TimeScale: 0.01, EmbedResources: true, RequestLogSize: 200_000}
	change(&cfg)
	sim, err := ucwasim.New(cfg)
	if err != nil {
		t.Fatalf("ucwasim.New: %v", err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// firstMessageAfter returns the earliest message the simulator accepted at
// or after t (and whether there is one), optionally only through pool.
func firstMessageAfter(sim *ucwasim.Sim, t time.Time, pool string) (ucwasim.Message, bool) {
	var first ucwasim.Message
	found := false
	for _, m := range sim.Messages() {
		if m.Time.Before(t) || (pool != "" && m.Pool != pool) {
			continue
		}
		if !found || m.Time.Before(first.Time) {
			first, found = m, true
		}
	}
	return first, found
}

// waitMessageAfter waits for a message accepted at or after t and returns
// when it was accepted.
func waitMessageAfter(t *testing.T, sim *ucwasim.Sim, after time.Time, pool string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m, ok := firstMessageAfter(sim, after, pool); ok {
			return m.Time
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message accepted (pool %q) within %s after %s", pool, timeout, after.Format(time.TimeOnly))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle waits for a stream to end and for every delivery it made to be
// final, and checks the promise: all delivered, duplicates marked, no
// protocol violation.
func settle(t *testing.T, r *relayProc, sim *ucwasim.Sim, s *sender, streamed func() []string) ([]string, map[string]deliveryView, outcome) {
	t.Helper()
	streamed()
	if t.Failed() {
		t.FailNow()
	}
	ids := s.acceptedIDs()
	views := waitFinal(t, r.base, ids, 90*time.Second)
	o := checkDelivered(t, sim, views)
	assertNoViolations(t, sim)
	return ids, views, o
}

// latencies returns webhook-accepted → delivered for the ids, sorted.
func latencies(t *testing.T, s *sender, views map[string]deliveryView, ids []string) []time.Duration {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for _, id := range ids {
		d, at := views[id], s.acceptedAt[id]
		if d.DeliveredAt == nil || at.IsZero() {
			t.Errorf("delivery %s: accepted %v, delivered %v", id, at, d.DeliveredAt)
			continue
		}
		out = append(out, d.DeliveredAt.Sub(at))
	}
	slices.Sort(out)
	return out
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// acceptedBetween returns the ids the sender had accepted in [from, to).
func (s *sender) acceptedBetween(from, to time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, at := range s.acceptedAt {
		if !at.Before(from) && at.Before(to) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// TestFailoverToReadyBackupIsFast (production timers): the home pool
// answers 410 CannotRedirect while deliveries flow, and the backup pool is
// ready at once. The relay must be sending through the backup within 2 s,
// and the messages caught in the failover must reach their recipients
// within 3 s of their webhook (median).
func TestFailoverToReadyBackupIsFast(t *testing.T) {
	sim := newSim(t)
	r := startRelayOpts(t, "relay", sim, relaytest.NewDatabase(t), relayOpts{production: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	streamed := s.streamAsync(ctx, "fo", 240, 2, 50*time.Millisecond)

	waitMessages(t, sim, 40, 30*time.Second)
	gone := time.Now()
	sim.SetHomePool("fe2-backup")
	sim.PoolGone("fe1")
	ids, views, o := settle(t, r, sim, s, streamed)

	first, ok := firstMessageAfter(sim, gone, "fe2-backup")
	if !ok {
		t.Fatal("no message went through the backup pool")
	}
	toBackup := first.Time.Sub(gone)
	if toBackup > 2*time.Second {
		t.Errorf("first message on the backup pool %s after the 410, want ≤ 2s", toBackup.Round(time.Millisecond))
	}
	// The deliveries caught in the failover: accepted from a second before
	// the pool went away (in flight then) to two seconds after.
	caught := s.acceptedBetween(gone.Add(-time.Second), gone.Add(2*time.Second))
	lat := latencies(t, s, views, caught)
	p50 := percentile(lat, 0.5)
	if len(lat) < 10 {
		t.Errorf("only %d deliveries were accepted around the failover; the test did not exercise it", len(lat))
	} else if p50 > 3*time.Second {
		t.Errorf("webhook → delivered median %s for the %d deliveries caught in the failover, want ≤ 3s", p50.Round(time.Millisecond), len(lat))
	}
	t.Logf("first message on the backup %s after the 410; %d deliveries caught in the failover: webhook → delivered p50 %s, p90 %s, max %s; %d deliveries in all (%s); %d duplicated (all marked resent)",
		toBackup.Round(time.Millisecond), len(lat), p50.Round(time.Millisecond), percentile(lat, 0.9).Round(time.Millisecond),
		percentile(lat, 1).Round(time.Millisecond), len(ids), s.summary(), o.duplicates)
}

// maxArrivalsPerSecond bounds the requests a failing pool sees in any one
// second. The relay lets at most 3 through in any second (relay/deliver/ucwa's
// gate, whose unit tests check that exactly), but the simulator counts
// arrivals: on a loaded machine (the race detector, other packages' tests
// beside these) a request can reach the server up to a second after the
// gate let it go, so one second of arrivals may hold two seconds' worth.
// What this catches is a relay that hammers: one that sent every waiting
// conversation's request as soon as a Retry-After ended, or probed a dead
// pool without pause.
const maxArrivalsPerSecond = 2 * 3

// TestServerBusyStormIsThrottling (production timers): about 25 answers of
// 503 with Retry-After: 1 in a row, on every resource the event channel
// included, then a healthy server. That is throttling, not a failover:
// the relay keeps its application, never asks a URL again before its
// Retry-After, sends no duplicate, and delivers again within 3 s of the
// storm's end.
func TestServerBusyStormIsThrottling(t *testing.T) {
	// At the tests' TimeScale an application whose event channel stays
	// away for 15 protocol minutes dies after 9 s of real time, shorter
	// than the storm; real servers give it 15 minutes.
	sim := newSimWith(t, func(c *ucwasim.Config) { c.PGetDeathTimeout, c.ResumeAfter = 2*time.Hour, 2*time.Hour })
	r := startRelayOpts(t, "relay", sim, relaytest.NewDatabase(t), relayOpts{production: true})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	streamed := s.streamAsync(ctx, "storm", 400, 2, 60*time.Millisecond)

	waitMessages(t, sim, 40, 30*time.Second)
	appsBefore := sim.Stats().ApplicationsCreated
	faultsBefore := sim.Stats().FaultsApplied
	const storm = 25
	start := time.Now()
	sim.Inject(ucwasim.Fault{Status: 503, Code: "ServiceUnavailable", RetryAfter: "1", Count: storm})
	deadline := time.Now().Add(60 * time.Second)
	for sim.Stats().FaultsApplied-faultsBefore < storm {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of the %d 503 answers were given within 60s", sim.Stats().FaultsApplied-faultsBefore, storm)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var end time.Time
	resources := map[string]int{}
	for _, e := range sim.RequestLog() {
		if e.Fault && !e.Time.Before(start) {
			resources[e.Resource]++
			if e.Time.After(end) {
				end = e.Time
			}
		}
	}
	resumed := waitMessageAfter(t, sim, end, "", 30*time.Second).Sub(end)
	ids, _, o := settle(t, r, sim, s, streamed)

	if resumed > 3*time.Second {
		t.Errorf("delivery resumed %s after the storm ended, want ≤ 3s", resumed.Round(time.Millisecond))
	}
	if resources["events"] == 0 {
		t.Errorf("the storm's 503s went to %v; want the event channel among them", resources)
	}
	if apps := sim.Stats().ApplicationsCreated; apps != appsBefore {
		t.Errorf("the relay created %d new application(s) during a short 503 storm: it failed over instead of waiting", apps-appsBefore)
	}
	if o.duplicates != 0 {
		t.Errorf("%d deliveries were sent more than once", o.duplicates)
	}
	maxRate, total := sim.RequestRate("fe1", start, end.Add(time.Millisecond))
	if maxRate > maxArrivalsPerSecond {
		t.Errorf("up to %d requests in one second reached the throttling pool, want 3 at most (%d as arrivals are counted)", maxRate, maxArrivalsPerSecond)
	}
	t.Logf("storm of %d answers of 503 lasted %s (%v); delivery resumed %s after it; %d requests reached fe1 meanwhile, at most %d in one second; %d deliveries (%s)",
		storm, end.Sub(start).Round(time.Millisecond), resources, resumed.Round(time.Millisecond), total, maxRate, len(ids), s.summary())
}

// TestDeadPoolIsProbedGentlyAndUsedWhenBack (production timers): every
// request to the only pool answers 410 for 20 s; there is no backup. The
// relay must not hammer it (about 3 requests a second at most), must be
// delivering again within 5 s of its return, and loses nothing.
func TestDeadPoolIsProbedGentlyAndUsedWhenBack(t *testing.T) {
	sim := newSim(t)
	r := startRelayOpts(t, "relay", sim, relaytest.NewDatabase(t), relayOpts{production: true})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	streamed := s.streamAsync(ctx, "dead", 360, 1, 80*time.Millisecond)

	waitMessages(t, sim, 30, 30*time.Second)
	gone := time.Now()
	sim.PoolGone("fe1")
	time.Sleep(20 * time.Second)
	back := time.Now()
	sim.PoolRecover("fe1")
	resumed := waitMessageAfter(t, sim, back, "fe1", 30*time.Second).Sub(back)
	ids, _, o := settle(t, r, sim, s, streamed)

	if resumed > 5*time.Second {
		t.Errorf("delivery resumed %s after the pool came back, want ≤ 5s", resumed.Round(time.Millisecond))
	}
	maxRate, total := sim.RequestRate("fe1", gone.Add(time.Second), back)
	if maxRate > maxArrivalsPerSecond {
		t.Errorf("up to %d requests in one second reached the dead pool (%d in %s), want 3 at most (%d as arrivals are counted)", maxRate, total, back.Sub(gone).Round(time.Second), maxArrivalsPerSecond)
	}
	t.Logf("pool dead %s: %d requests reached it, at most %d in one second; delivery resumed %s after it came back; %d deliveries (%s); %d duplicated (all marked resent)",
		back.Sub(gone).Round(time.Millisecond), total, maxRate, resumed.Round(time.Millisecond), len(ids), s.summary(), o.duplicates)
}

// TestUnconfirmedSendsAreBounded: a recipient whose messages the server
// takes but never confirms gets exactly max_resends+1 copies (the later
// ones marked resent), then the delivery ends uncertain and says why.
// Nobody else's delivery suffers.
func TestUnconfirmedSendsAreBounded(t *testing.T) {
	sim := newSim(t)
	sim.SetUnconfirmed(recipientSIP(0), true)
	r := startRelay(t, "relay", sim, relaytest.NewDatabase(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	ids := s.post(ctx, "prod", relaytest.Notification("never-confirmed", 1, "firing"))
	if len(ids) != 4 {
		t.Fatalf("route prod made %d deliveries, want 4", len(ids))
	}
	views := waitFinal(t, r.base, ids, 50*time.Second)
	byID := messagesByDelivery(sim, views)
	const maxResends = 2 // the default
	for _, id := range ids {
		d, msgs := views[id], byID[id]
		if d.Recipient != recipientSIP(0) {
			if d.State != "delivered" || len(msgs) != 1 {
				t.Errorf("delivery %s to %s: %s with %d message(s), want delivered once", id, d.Recipient, d.State, len(msgs))
			}
			continue
		}
		if d.State != "uncertain" || !strings.Contains(d.LastError, "max_resends") {
			t.Errorf("never-confirmed delivery %s: %s (%q), want uncertain, saying max_resends is spent", id, d.State, d.LastError)
		}
		if len(msgs) != maxResends+1 || d.Unconfirmed != maxResends+1 {
			t.Errorf("never-confirmed delivery %s: %d messages sent, %d counted unconfirmed; want exactly %d", id, len(msgs), d.Unconfirmed, maxResends+1)
		}
		for k, m := range msgs {
			if marked := strings.HasPrefix(m.Body, "(resent) "); marked != (k > 0) {
				t.Errorf("copy %d of %s: %q; only the copies after the first are marked resent", k+1, id, m.Body)
			}
		}
		for _, a := range d.AttemptLog {
			if a.Outcome != "uncertain" {
				t.Errorf("attempt %d of %s: outcome %s, want uncertain", a.Attempt, id, a.Outcome)
			}
		}
		t.Logf("never-confirmed delivery %s: %d sends, then %s: %s", id, len(msgs), d.State, d.LastError)
	}
	assertNoViolations(t, sim)
}

// TestLinksOutsideAllowedHostsAreTheServersFault: the pool hands out links
// on a host the relay does not trust. The relay must refuse them without
// blaming the messages (nothing dead), say why in its state and log, and
// deliver everything once the links are right again.
func TestLinksOutsideAllowedHostsAreTheServersFault(t *testing.T) {
	sim := newSim(t)
	sim.SetLinkHost("fe1", "localhost")
	r := startRelay(t, "relay", sim, relaytest.NewDatabase(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	ids := s.stream(ctx, "links", 6, 2, 0)

	// The relay says it is failing over; a while later nothing has been
	// counted against the deliveries.
	deadline := time.Now().Add(30 * time.Second)
	for st := sessionState(r.base); st != "failing_over"; st = sessionState(r.base) {
		if time.Now().After(deadline) {
			t.Fatalf("relay_ucwa_session_state says %q after 30 s, want failing_over", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	client := &http.Client{Timeout: 5 * time.Second}
	for _, id := range ids {
		d, err := getDelivery(client, r.base, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.final() || d.Failures != 0 {
			t.Errorf("delivery %s is %s with %d failures counted (%s) while the server's links are unusable; want it queued, nothing counted against it",
				id, d.State, d.Failures, d.LastError)
		}
	}
	if n := len(sim.Messages()); n != 0 {
		t.Errorf("%d messages went out through links outside the allowed hosts", n)
	}
	if n := sim.Stats().LinkHostRequests["fe1"]; n != 0 {
		t.Errorf("the relay sent %d request(s) to the untrusted host", n)
	}
	if st := sessionState(r.base); st != "failing_over" {
		t.Errorf("relay_ucwa_session_state says %q, want failing_over still", st)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "host_not_allowed") && !strings.Contains(logs, "AllowedHosts") {
		t.Error("the log does not say that links were refused for their host")
	}

	sim.SetLinkHost("fe1", "")
	views := waitFinal(t, r.base, ids, 40*time.Second)
	checkDelivered(t, sim, views)
	assertNoViolations(t, sim)
	if st := sessionState(r.base); st != "ready" && st != "throttled" {
		t.Errorf("relay_ucwa_session_state says %q after recovery, want ready", st)
	}
}

// TestUserAgentNotAllowedStopsSending: the server refuses the relay's
// user agent. Sending stops for the bot account, every delivery stays
// queued (none dead), the state gauge says stopped, an error log says why,
// and the session lease is released for another replica to try.
func TestUserAgentNotAllowedStopsSending(t *testing.T) {
	sim := newSim(t)
	sim.Inject(ucwasim.Fault{Resource: "applications", Status: 410, Code: "Gone", Subcode: "UserAgentNotAllowed", Count: -1})
	dbURL := relaytest.NewDatabase(t)
	r := startRelay(t, "relay", sim, dbURL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	ids := s.stream(ctx, "ua", 6, 2, 0)

	deadline := time.Now().Add(20 * time.Second)
	for sessionState(r.base) != "stopped" {
		if time.Now().After(deadline) {
			t.Fatalf("relay_ucwa_session_state says %q after 20s, want stopped", sessionState(r.base))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // let anything that would go wrong go wrong
	client := &http.Client{Timeout: 5 * time.Second}
	for _, id := range ids {
		d, err := getDelivery(client, r.base, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.State != "pending" || d.Failures != 0 {
			t.Errorf("delivery %s is %s with %d failures counted (%s), want pending, nothing counted, while the account is refused",
				id, d.State, d.Failures, d.LastError)
		}
	}
	if held, ok := sessionHeld(r.base); !ok || held {
		t.Errorf("relay_session_held = %v (ok %v), want 0: the lease must be released", held, ok)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var live int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE expires_at > now()`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != 0 {
		t.Errorf("%d session lease(s) still held in the database, want it released", live)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "UserAgentNotAllowed") || !strings.Contains(logs, `"level":"ERROR"`) {
		t.Error("no error log names UserAgentNotAllowed")
	}
	if n := len(sim.Messages()); n != 0 {
		t.Errorf("%d messages were sent", n)
	}
}

// TestDatabaseDownLongerThanSessionTTL: PostgreSQL goes away for 20 s,
// longer than the session lease, while 1,000 messages are being sent.
// Nothing is lost, no message the server confirmed is sent again, and the
// audit shows, for every delivery, the attempt that delivered it.
func TestDatabaseDownLongerThanSessionTTL(t *testing.T) {
	sim := newSim(t)
	// About 20 messages a second per recipient, so the outage comes mid-stream.
	sim.Inject(ucwasim.Fault{Resource: "sendMessage", Delay: 40 * time.Millisecond, Count: -1})
	proxy, dbURL := relaytest.NewProxy(t, relaytest.NewDatabase(t))
	// One message per delivery: the outage must come mid-stream, which
	// coalescing the backlog would shorten to a few messages. (The crash,
	// failover and database-restart tests run with it on.)
	r := startRelayWith(t, "relay", sim, dbURL, oneByOne())
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	ids := s.stream(ctx, "pgdown", 300, 8, 0) // 300 notifications, 1,000 deliveries
	if len(ids) != 1000 {
		t.Fatalf("%d deliveries accepted, want 1000 (%s)", len(ids), s.summary())
	}
	waitMessages(t, sim, 150, 60*time.Second)
	proxy.Down()
	atDown := len(sim.Messages())
	time.Sleep(20 * time.Second)
	duringDown := len(sim.Messages()) - atDown
	proxy.Up()
	if atDown >= len(ids) {
		t.Fatalf("every message was sent before the database went away; not mid-stream")
	}

	views := waitFinal(t, r.base, ids, 120*time.Second)
	o := checkDelivered(t, sim, views)
	assertNoViolations(t, sim)
	// The simulator confirmed every message, so none may be sent twice. (A
	// claim whose answer the outage swallowed is taken back later and sent
	// marked "(resent)", once: the new claim cannot know it was never sent.)
	if o.duplicates != 0 {
		t.Errorf("%d deliveries were sent more than once", o.duplicates)
	}
	// Every delivery's audit holds the attempt that delivered it, under the
	// operationId the server saw.
	byID := messagesByDelivery(sim, views)
	missing := 0
	for id, d := range views {
		sent := map[string]bool{}
		for _, m := range byID[id] {
			sent[m.OperationID] = true
		}
		found := false
		for _, a := range d.AttemptLog {
			if a.Outcome == "delivered" && sent[a.UCWAOperationID] {
				found = true
			}
		}
		if !found {
			missing++
			if missing <= 5 {
				t.Errorf("delivery %s: no delivered attempt in the audit matches what the server received (%v)", id, fmt.Sprint(d.AttemptLog))
			}
		}
	}
	recorded := strings.Count(r.logs.String(), "delivery outcome recorded after the database came back")
	t.Logf("database away 20s: %d of 1000 messages sent before, %d during; %d outcomes recorded after it came back; %d deliveries lack their delivering attempt; %d sent once, marked resent",
		atDown, duringDown, recorded, missing, o.resentOnly)
}
