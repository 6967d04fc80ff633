package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestCrashMidStream kills the sending relay with SIGKILL while deliveries
// flow and webhooks keep arriving; a second relay on the same database
// takes over once the dead one's session lease expires. Nothing accepted is
// lost, and a message may arrive twice only when the second copy says it
// was resent (the first try may have reached the recipient unconfirmed).
func TestCrashMidStream(t *testing.T) {
	sim := newSim(t)
	dbURL := relaytest.NewDatabase(t)
	a := startRelay(t, "A", sim, dbURL)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := newSender(t, a.base)
	// 300 notifications (about 1000 deliveries over 10 recipients), paced
	// so that some are still being posted when A dies: the posts in flight
	// then fail and are retried against B, as Alertmanager would.
	streamed := s.streamAsync(ctx, "crash", 300, 6, 15*time.Millisecond)

	waitMessages(t, sim, 150, 60*time.Second)
	a.kill()
	atKill := len(sim.Messages())
	acceptedAtKill := len(s.acceptedIDs())
	t.Logf("killed A with %d messages sent and %d deliveries accepted", atKill, acceptedAtKill)

	b := startRelay(t, "B", sim, dbURL)
	s.point(b.base)
	streamed()
	if t.Failed() {
		t.FailNow()
	}
	// A few more after the restart.
	s.stream(ctx, "after", 6, 2, 0)
	ids := s.acceptedIDs()
	if atKill >= len(ids) {
		t.Fatalf("A was killed after %d messages, when all %d deliveries may have been sent: the crash was not mid-stream", atKill, len(ids))
	}

	views := waitFinal(t, b.base, ids, 90*time.Second)
	o := checkDelivered(t, sim, views)
	assertNoViolations(t, sim)
	t.Logf("%d deliveries accepted (%s); %d messages at the kill; %d in all; %d deliveries duplicated (%d extra copies, all marked resent); %d sent once but marked resent",
		len(ids), s.summary(), atKill, len(sim.Messages()), o.duplicates, o.extra, o.resentOnly)
}
