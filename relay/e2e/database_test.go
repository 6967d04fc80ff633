package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestDatabaseRestartMidStream cuts the relay's database connections (and
// refuses new ones) for three seconds while deliveries flow and webhooks
// arrive. Webhooks during the outage get 503, which the sender retries as
// Alertmanager does; when the database is back the same process, never
// restarted, takes webhooks again and delivers everything accepted.
func TestDatabaseRestartMidStream(t *testing.T) {
	sim := newSim(t)
	proxy, dbURL := relaytest.NewProxy(t, relaytest.NewDatabase(t))
	r := startRelay(t, "relay", sim, dbURL)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	// Posting starts before the outage, goes through it and ends after it.
	streamed := s.streamOpen(ctx, "db", 4, 60*time.Millisecond)

	waitMessages(t, sim, 100, 60*time.Second)
	proxy.Down()
	down := time.Now()
	atDown := len(sim.Messages())
	acceptedAtDown := len(s.acceptedIDs())
	time.Sleep(3 * time.Second)
	s.mu.Lock()
	refused := s.statuses[http.StatusServiceUnavailable]
	s.mu.Unlock()
	proxy.Up()
	up := time.Now()
	t.Logf("database away for %s: %d messages and %d deliveries accepted before; %d answers of 503 during", time.Since(down).Round(time.Millisecond), atDown, acceptedAtDown, refused)
	waitAcceptedAfter(t, s, up, 20, 60*time.Second)
	streamed()
	if t.Failed() {
		t.FailNow()
	}
	if refused == 0 {
		t.Errorf("no webhook was answered 503 while the database was away (%s)", s.summary())
	}
	// A few more after the outage.
	s.stream(ctx, "later", 6, 2, 0)
	if r.exited() {
		t.Fatalf("the relay exited (%v); it must ride out a database outage", r.err)
	}

	ids := s.acceptedIDs()
	if atDown >= len(ids) {
		t.Fatalf("the database went away after %d messages, when all %d deliveries may have been sent: not mid-stream", atDown, len(ids))
	}
	views := waitFinal(t, r.base, ids, 90*time.Second)
	recovered := time.Since(up)
	o := checkDelivered(t, sim, views)
	assertNoViolations(t, sim)
	s.mu.Lock()
	for status := range s.statuses {
		if status/100 != 2 && status != http.StatusServiceUnavailable {
			t.Errorf("webhooks were answered %d; want only 2xx, or 503 during the outage", status)
		}
	}
	s.mu.Unlock()
	t.Logf("all final %s after the database came back; %d deliveries accepted (%s); %d messages in all; %d deliveries duplicated (%d extra copies, all marked resent); %d sent once but marked resent",
		recovered.Round(time.Millisecond), len(ids), s.summary(), len(sim.Messages()), o.duplicates, o.extra, o.resentOnly)
}
