package ucwa

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

// waitURLQueue waits until at least n requests hold or wait for the
// per-URL slot of the session's startMessaging link.
func waitURLQueue(t *testing.T, b *testBundle, n int) {
	t.Helper()
	st := b.client.current()
	if st.sess == nil {
		t.Fatalf("no live session")
	}
	u := st.sess.startMessaging
	key := "POST " + u.Host + u.Path
	g := b.client.hc.gate
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		users := 0
		if s := g.urls[key]; s != nil {
			users = s.users
		}
		g.mu.Unlock()
		if users >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued for startMessaging, want %d", users, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSlowInvitationsDoNotStallLiveConversations: invitations share one
// URL (startMessaging) and go one at a time. Those waiting for it hold no
// request slot of the account, so while a slow invitation is in flight
// and more new recipients than there are slots queue behind it, a send on
// a conversation already connected goes at once.
func TestSlowInvitationsDoNotStallLiveConversations(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	live := target(0)
	if out := b.send(t, live, "hol-0", "warm"); out.Kind != relay.Delivered {
		t.Fatalf("warm-up = %+v", out)
	}
	before := b.sim.Stats().Requests["startMessaging 201"]
	b.sim.Inject(ucwasim.Fault{Resource: "startMessaging", Delay: 2 * time.Second})
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 1; i <= 10; i++ { // more than MaxConcurrentRequests (8)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out := b.send(t, target(i), fmt.Sprintf("hol-new-%d", i), "new recipient"); out.Kind != relay.Delivered {
				t.Errorf("Send to new recipient %d = %+v", i, out)
			}
		}()
	}
	// Without the fix only 8 get this far (they hold every slot); with it
	// all 10 do.
	waitURLQueue(t, b, 8)
	start := time.Now()
	out := b.send(t, live, "hol-1", "on the live conversation")
	took := time.Since(start)
	// Counted before the answer is written: the slow invitation's answer
	// had not left the server when the send returned.
	answered := b.sim.Stats().Requests["startMessaging 201"] - before
	if out.Kind != relay.Delivered {
		t.Fatalf("Send on the live conversation = %+v", out)
	}
	if answered != 0 {
		t.Errorf("the send on a live conversation returned after %v, once %d invitation(s) were answered: it waited behind them", took, answered)
	}
	t.Logf("send on the live conversation took %v", took)
}
