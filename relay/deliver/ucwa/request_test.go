package ucwa

import (
	"context"
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

// warmTargets delivers one message to each of n targets, so that each has
// a live conversation.
func warmTargets(t *testing.T, b *testBundle, n int) {
	t.Helper()
	for i := range n {
		if out := b.send(t, target(i), fmt.Sprintf("warm-%d", i), "warm"); out.Kind != relay.Delivered {
			t.Fatalf("warm-up %d = %+v", i, out)
		}
	}
}

// sendAll sends one message to each of n targets at once and returns the
// outcomes.
func sendAll(t *testing.T, b *testBundle, n int, op string) []relay.Outcome {
	t.Helper()
	outs := make([]relay.Outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := b.client.Send(ctx, target(i), fmt.Sprintf("%s-%d", op, i), "concurrent")
			if err != nil {
				t.Errorf("Send: %v", err)
			}
			outs[i] = out
		}()
	}
	wg.Wait()
	return outs
}

// TestTokenRefusalCountedOncePerToken: several requests in flight at once
// are all refused with the same fresh token. That is one refusal, not
// one per request: with one more fresh token refused while the
// application is re-created, the client is still short of
// maxAuthRefusals and recovers instead of stopping for good.
// (TestStopped checks that three fresh tokens refused in a row stop it.)
func TestTokenRefusalCountedOncePerToken(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	const n = 4
	warmTargets(t, b, n)
	// Every send is refused twice (its token, then the fresh one); the
	// delay puts them all in flight with the same token.
	b.sim.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 401, Delay: 300 * time.Millisecond, Count: 2 * n})
	// The re-creation after it: one fresh token refused.
	b.sim.Inject(ucwasim.Fault{Resource: "applications", Status: 401, Count: 2})
	outs := sendAll(t, b, n, "tr")
	checkBlame(t, outs...)
	outs = b.sendUntilDelivered(t, target(0), "tr-after", "after the refusals", 50)
	b.checkDelivered(t, outs)
	if err := b.client.Err(); err != nil {
		t.Errorf("client stopped: %v", err)
	}
	st := b.sim.Stats()
	if got := st.Requests["sendMessage 401"]; got != 2*n {
		t.Errorf("sendMessage got %d 401 answers, want %d", got, 2*n)
	}
	if got := st.Requests["applications 401"]; got != 2 {
		t.Errorf("application creation got %d 401 answers, want 2 (a fresh token refused once)", got)
	}
}

// TestTokenEndpointTimeoutCountedOnce: the tokens expire and the token
// endpoint does not answer in time. Every request waiting for the new
// token gets the same failure; that is one connection failure, not one
// per request, so it does not reach FailoverAfter and the session stays.
func TestTokenEndpointTimeoutCountedOnce(t *testing.T) {
	t.Parallel()
	// The request timer applies to every request: long enough that only
	// the token request, held far longer, runs out of it on a loaded
	// machine.
	b := setup(t, setupOpts{client: func(c *Config) { c.Timers.Request = 2 * time.Second }})
	const n = 6 // more than FailoverAfter (5)
	warmTargets(t, b, n)
	b.sim.Inject(ucwasim.Fault{Resource: "token", Delay: 5 * time.Second})
	b.sim.ExpireTokens()
	outs := sendAll(t, b, n, "te")
	checkBlame(t, outs...)
	waitFaultDone(t, b, "token")
	outs = b.sendUntilDelivered(t, target(0), "te-after", "after the timeout", 50)
	b.checkDelivered(t, outs)
	st := b.sim.Stats()
	if st.DiscoveryCalls["internal"] != 1 || st.ApplicationsCreated != 1 {
		t.Errorf("discovery calls %v, applications created %d: one token timeout was taken for a pool failure",
			st.DiscoveryCalls, st.ApplicationsCreated)
	}
}
