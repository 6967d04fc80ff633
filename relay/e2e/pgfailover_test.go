package e2e

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestPostgresFailoverToSyncStandby runs the relay against a primary and a
// synchronous streaming standby, both made by deploy/local/postgres.sh as
// a user would, with a DATABASE_URL naming both hosts and asking for the
// read-write one. While webhooks arrive steadily the primary is stopped as
// a crash would stop it (immediate) and the standby promoted. The same
// relay process finds the new primary by itself; every webhook answered
// 2xx, before, during or after, is delivered exactly once. The time from
// promotion to the first webhook accepted again is reported, not asserted.
func TestPostgresFailoverToSyncStandby(t *testing.T) {
	pg := newReplicatedPostgres(t)
	sim := newSim(t)
	r := startRelay(t, "relay", sim, pg.url)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	// About 3 s of posting at a steady pace: it starts before the primary
	// goes away, waits through the failover and goes on after it.
	streamed := s.streamAsync(ctx, "pg", 400, 4, 25*time.Millisecond)

	waitMessages(t, sim, 100, 60*time.Second)
	acceptedBefore := len(s.acceptedIDs())
	crashed := time.Now()
	pg.run("stop", pg.primary, "immediate")
	stopped := time.Now()
	pg.run("promote", pg.standby)
	promoted := time.Now()
	streamed()
	if t.Failed() {
		t.FailNow()
	}
	s.stream(ctx, "later", 30, 2, 0)
	if r.exited() {
		t.Fatalf("the relay exited (%v); it must find the new primary by itself", r.err)
	}

	ids := s.acceptedIDs()
	s.mu.Lock()
	var firstAfter time.Time
	for _, at := range s.acceptedAt {
		if at.After(promoted) && (firstAfter.IsZero() || at.Before(firstAfter)) {
			firstAfter = at
		}
	}
	refused := s.statuses[http.StatusServiceUnavailable]
	for status := range s.statuses {
		if status/100 != 2 && status != http.StatusServiceUnavailable {
			t.Errorf("webhooks were answered %d; want only 2xx, or 503 during the failover", status)
		}
	}
	s.mu.Unlock()
	if acceptedBefore >= len(ids) || firstAfter.IsZero() {
		t.Fatalf("no webhook accepted after the promotion (%d before the primary stopped, %d in all): not mid-stream", acceptedBefore, len(ids))
	}

	views := waitFinal(t, r.base, ids, 90*time.Second)
	o := checkDelivered(t, sim, views)
	if o.duplicates > 0 || o.resentOnly > 0 {
		t.Errorf("%d deliveries reached the simulator more than once and %d were marked resent; with a synchronous standby each is sent exactly once",
			o.duplicates, o.resentOnly)
	}
	assertNoViolations(t, sim)
	t.Logf("primary stopped (immediate) in %s, standby promoted in %s; first webhook accepted %s after the promotion (%s after the primary went away); "+
		"%d webhooks answered 503 meanwhile; %d deliveries accepted (%d before the primary stopped; %s), all delivered, none twice",
		stopped.Sub(crashed).Round(time.Millisecond), promoted.Sub(stopped).Round(time.Millisecond),
		firstAfter.Sub(promoted).Round(time.Millisecond), firstAfter.Sub(crashed).Round(time.Millisecond),
		refused, len(ids), acceptedBefore, s.summary())
}

// replicatedPostgres is a primary and its synchronous standby, made with
// deploy/local/postgres.sh for one test and removed after it.
type replicatedPostgres struct {
	t                *testing.T
	primary, standby string // data directories
	url              string // DATABASE_URL naming both, read-write only
}

func newReplicatedPostgres(t *testing.T) *replicatedPostgres {
	t.Helper()
	// Like every test here, it runs where PostgreSQL is set up for tests
	// (and fails under RELAY_REQUIRE_DB=1 otherwise), though it makes its own.
	relaytest.AdminURL(t)
	base, err := os.MkdirTemp("", "relay-pgfailover-")
	if err != nil {
		t.Fatal(err)
	}
	// As root the clusters run as the postgres user, who must reach them.
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	pg := &replicatedPostgres{t: t, primary: filepath.Join(base, "primary"), standby: filepath.Join(base, "standby")}
	t.Cleanup(func() {
		pg.run("stop", pg.standby, "immediate")
		pg.run("stop", pg.primary, "immediate")
		_ = os.RemoveAll(base)
	})
	primaryPort, standbyPort := port(t), port(t)
	pg.run("start", pg.primary, primaryPort)
	out := pg.run("standby", pg.standby, standbyPort, primaryPort)
	pg.url = strings.TrimPrefix(strings.TrimSpace(out), "DATABASE_URL=")
	if !strings.Contains(pg.url, ","+"127.0.0.1:"+standbyPort) || !strings.Contains(pg.url, "target_session_attrs=read-write") {
		t.Fatalf("postgres.sh standby printed %q, want a DATABASE_URL naming both hosts, read-write only", out)
	}
	return pg
}

// run runs deploy/local/postgres.sh with args and returns its output.
func (pg *replicatedPostgres) run(args ...string) string {
	pg.t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("../../deploy/local/postgres.sh", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		pg.t.Fatalf("postgres.sh %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func port(t *testing.T) string {
	t.Helper()
	_, p, err := net.SplitHostPort(relaytest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
