package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/deliver"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

// TestTwoReplicas runs two relays on one database. Both take webhooks;
// exactly one holds the bot account's session lease and sends, so in
// normal operation every delivery is exactly one message. When the holder
// is killed, the other takes the lease over once it expires and delivers
// what arrives afterwards.
func TestTwoReplicas(t *testing.T) {
	sim := newSim(t)
	dbURL := relaytest.NewDatabase(t)
	a := startRelay(t, "A", sim, dbURL)
	b := startRelay(t, "B", sim, dbURL)
	replicas := []*relayProc{a, b}

	holder := waitOneHolder(t, replicas, 15*time.Second)
	other := a
	if holder == a {
		other = b
	}
	t.Logf("replica %s holds the session", holder.name)
	if held, ok := sessionHeld(other.base); !ok || held {
		t.Errorf("replica %s: relay_session_held held=%v present=%v, want present and 0", other.name, held, ok)
	}
	for _, p := range replicas {
		n := strings.Count(p.logs.String(), "session lease acquired")
		if want := map[bool]int{true: 1, false: 0}[p == holder]; n != want {
			t.Errorf("replica %s logged %q %d times, want %d", p.name, "session lease acquired", n, want)
		}
	}

	// Both replicas take webhooks at once.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		mu    sync.Mutex
		first []string
		wg    sync.WaitGroup
	)
	for _, p := range replicas {
		wg.Go(func() {
			ids := newSender(t, p.base).stream(ctx, "to-"+p.name, 60, 3, 5*time.Millisecond)
			mu.Lock()
			first = append(first, ids...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	views := waitFinal(t, other.base, first, 60*time.Second)
	checkDelivered(t, sim, views)
	assertSentOnce(t, sim, views, first)
	if n := sim.Stats().ApplicationsCreated; n != 1 {
		t.Errorf("the simulator saw %d UCWA applications created, want 1: only the lease holder may sign in", n)
	}
	if h := holders(replicas); len(h) != 1 || h[0] != holder {
		t.Fatalf("after the first batch the holders are %v, want only %s", names(h), holder.name)
	}

	// The holder dies without a word; the lease must expire first.
	holder.kill()
	killed := time.Now()
	for {
		if held, _ := sessionHeld(other.base); held {
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("replica %s did not take the session over within 20s of the holder's death", other.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	takeover := time.Since(killed)

	later := newSender(t, other.base).stream(ctx, "later", 30, 3, 0)
	if t.Failed() {
		t.FailNow()
	}
	all := append(append([]string{}, first...), later...)
	views = waitFinal(t, other.base, all, 60*time.Second)
	checkDelivered(t, sim, views)
	assertSentOnce(t, sim, views, later)
	assertNoViolations(t, sim)
	t.Logf("%d deliveries through both replicas and %d after the holder's death, each sent exactly once; %s took the session over %s after %s was killed (session_ttl 2s)",
		len(first), len(later), other.name, takeover.Round(time.Millisecond), holder.name)
}

// waitOneHolder waits until exactly one replica reports that it holds the
// session lease, and returns it.
func waitOneHolder(t *testing.T, replicas []*relayProc, timeout time.Duration) *relayProc {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h := holders(replicas)
		if len(h) == 1 {
			return h[0]
		}
		if len(h) > 1 {
			t.Fatalf("replicas %v all report relay_session_held 1; want exactly one", names(h))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica holds the session lease after %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holders returns the replicas whose relay_session_held is 1.
func holders(replicas []*relayProc) []*relayProc {
	var out []*relayProc
	for _, p := range replicas {
		if held, _ := sessionHeld(p.base); held {
			out = append(out, p)
		}
	}
	return out
}

func names(ps []*relayProc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.name)
	}
	return out
}

// assertSentOnce asserts each delivery reached the simulator exactly once
// (as a message or a section of a combined one), not marked resent.
func assertSentOnce(t *testing.T, sim *ucwasim.Sim, views map[string]deliveryView, ids []string) {
	t.Helper()
	byID := messagesByDelivery(sim, views)
	for _, id := range ids {
		msgs := byID[id]
		if len(msgs) != 1 {
			t.Errorf("delivery %s reached the simulator %d times, want exactly once", id, len(msgs))
			continue
		}
		if strings.HasPrefix(msgs[0].Body, deliver.ResentMarker) {
			t.Errorf("delivery %s was marked resent with nothing before it: %q", id, msgs[0].Body)
		}
	}
}
