package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/relaytest"
)

// TestPoolFailoverMidStream takes the home pool away while deliveries flow
// and makes the backup pool the bot's home: the relay's UCWA session fails
// over by itself (new discovery, sign-in and application) and every
// accepted delivery arrives, those accepted after the failover through the
// backup pool.
func TestPoolFailoverMidStream(t *testing.T) {
	sim := newSim(t)
	if got := sim.PoolNames(); len(got) != 2 || got[0] != "fe1" || got[1] != "fe2-backup" {
		t.Fatalf("simulator pools %v, want [fe1 fe2-backup]", got)
	}
	r := startRelay(t, "relay", sim, relaytest.NewDatabase(t))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := newSender(t, r.base)
	before := s.streamAsync(ctx, "before", 150, 4, 15*time.Millisecond)

	waitMessages(t, sim, 100, 60*time.Second)
	sim.PoolGone("fe1")
	sim.SetHomePool("fe2-backup")
	atFailover := len(sim.Messages())
	beforeIDs := before()
	after := s.stream(ctx, "after", 60, 4, 5*time.Millisecond)
	if t.Failed() {
		t.FailNow()
	}

	ids := s.acceptedIDs()
	if atFailover >= len(beforeIDs) {
		t.Fatalf("fe1 went away after %d messages, when all %d earlier deliveries may have been sent: not mid-stream", atFailover, len(beforeIDs))
	}
	views := waitFinal(t, r.base, ids, 90*time.Second)
	o := checkDelivered(t, sim, views)
	assertNoViolations(t, sim)

	byID := messagesByDelivery(sim, views)
	pools := map[string]int{}
	for _, id := range ids {
		for _, m := range byID[id] {
			pools[m.Pool]++
		}
	}
	for _, id := range after {
		for _, m := range byID[id] {
			if m.Pool != "fe2-backup" {
				t.Errorf("delivery %s, accepted after the failover, went through pool %q (%s), want fe2-backup", id, m.Pool, m.OperationID)
			}
		}
	}
	if pools["fe1"] == 0 {
		t.Errorf("no message went through fe1 before the failover: messages per pool %v", pools)
	}
	t.Logf("%d deliveries (%d after the failover; %s); %d messages before fe1 went away; messages per pool %v; %d deliveries duplicated (%d extra copies, all marked resent); %d sent once but marked resent",
		len(ids), len(after), s.summary(), atFailover, pools, o.duplicates, o.extra, o.resentOnly)
}
