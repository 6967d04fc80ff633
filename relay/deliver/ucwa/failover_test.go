package ucwa

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

func poolHost(t *testing.T, sim *ucwasim.Sim, pool string) string {
	t.Helper()
	u, err := url.Parse(sim.PoolURL(pool))
	if err != nil {
		t.Fatalf("parse pool URL: %v", err)
	}
	return u.Host
}

// streamUntil runs one sender per target, each sending until stop is
// closed, retrying the way the deliver worker would, and returns every
// outcome.
func streamUntil(t *testing.T, b *testBundle, targets int, stop <-chan struct{}) func() []relay.Outcome {
	var (
		mu   sync.Mutex
		outs []relay.Outcome
		wg   sync.WaitGroup
	)
	for i := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				out, err := b.client.Send(ctx, target(i), fmt.Sprintf("st-%d-%d", i, n), fmt.Sprintf("message %d", n))
				cancel()
				if err != nil {
					t.Errorf("Send: %v", err)
					return
				}
				mu.Lock()
				outs = append(outs, out)
				mu.Unlock()
				if out.Kind != relay.Delivered {
					time.Sleep(min(out.RetryAfter, 20*time.Millisecond) + time.Millisecond)
				}
			}
		}()
	}
	return func() []relay.Outcome {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return outs
	}
}

// waitDelivered waits until n messages were delivered through pool host.
func waitDelivered(t *testing.T, b *testBundle, host string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		got := 0
		for _, m := range b.sim.Messages() {
			if m.Pool == host || b.sim.PoolURL(m.Pool) == "http://"+host {
				got++
			}
		}
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d messages accepted on %s in time", n, host)
}

func TestFailoverMidStream(t *testing.T) {
	t.Parallel()
	for _, embed := range []bool{true, false} {
		t.Run(map[bool]string{true: "embedded", false: "bare_links"}[embed], func(t *testing.T) {
			t.Parallel()
			testFailoverMidStream(t, embed)
		})
	}
}

func testFailoverMidStream(t *testing.T, embed bool) {
	b := setup(t, setupOpts{sim: func(c *ucwasim.Config) { c.EmbedResources = embed }})
	pools := b.sim.PoolNames()
	home, backup := poolHost(t, b.sim, pools[0]), poolHost(t, b.sim, pools[1])
	stop := make(chan struct{})
	collect := streamUntil(t, b, 10, stop)
	waitDelivered(t, b, home, 50)

	b.sim.SetHomePool(pools[1])
	b.sim.PoolGone(pools[0])
	waitDelivered(t, b, backup, 50)
	close(stop)
	outs := collect()

	b.checkDelivered(t, outs)
	var onBackup, uncertain int
	for _, o := range outs {
		switch o.Kind {
		case relay.Permanent:
			t.Errorf("permanent outcome during failover: %+v", o)
		case relay.Uncertain:
			uncertain++
		case relay.Delivered:
			if o.Pool == backup {
				onBackup++
			}
		}
	}
	if onBackup == 0 {
		t.Errorf("no Delivered outcome names the backup pool %s", backup)
	}
	if st := b.sim.Stats(); st.ApplicationsCreated != 2 {
		t.Errorf("applications created = %d, want 2 (home, then backup)", st.ApplicationsCreated)
	}
	if s := b.client.Status(); s.Pool != backup || !s.ApplicationAlive {
		t.Errorf("Status = %+v, want alive on %s", s, backup)
	}
	t.Logf("%d outcomes, %d uncertain, %d delivered on backup", len(outs), uncertain, onBackup)
}

func TestFailoverInFlightUncertain(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	pools := b.sim.PoolNames()
	tg := target(1)
	if out := b.send(t, tg, "f-0", "warm"); out.Kind != relay.Delivered {
		t.Fatalf("warm-up = %+v", out)
	}
	// The message is accepted but its completion never comes; the pool
	// goes away while the client waits for it.
	b.sim.Inject(ucwasim.Fault{Resource: "sendMessage", SuppressCompletion: true})
	res := make(chan relay.Outcome, 1)
	go func() {
		out, _ := b.client.Send(context.Background(), tg, "f-1", "in flight")
		res <- out
	}()
	waitRecorded(t, b, "f-1")
	b.sim.SetHomePool(pools[1])
	b.sim.PoolGone(pools[0])
	out := <-res
	if out.Kind != relay.Uncertain || out.Reason != string(ReasonFailover) {
		t.Fatalf("in-flight Send = %+v, want Uncertain/failover", out)
	}
	outs := b.sendUntilDelivered(t, tg, "f-2", "after", 50)
	if last := outs[len(outs)-1]; last.Pool != poolHost(t, b.sim, pools[1]) {
		t.Errorf("delivered on %s, want the backup pool", last.Pool)
	}
	b.checkDelivered(t, outs)
}

func waitRecorded(t *testing.T, b *testBundle, op string) {
	t.Helper()
	for range 2000 {
		if _, ok := b.recorded()[op]; ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("simulator never accepted %s", op)
}

func TestPoolGoneNoBackupHoldsThenRecovers(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	pools := b.sim.PoolNames()
	tg := target(2)
	if out := b.send(t, tg, "h-0", "warm"); out.Kind != relay.Delivered {
		t.Fatalf("warm-up = %+v", out)
	}
	b.sim.PoolGone(pools[0]) // F1: no backup, discovery keeps pointing at fe1
	// Each Send waits out the short pause and the rebuild, which fails
	// again (at about 3 requests a second to the failing pool).
	var held int
	for i := range 6 {
		out := b.send(t, tg, fmt.Sprintf("h-%d", i+1), "while gone")
		switch out.Kind {
		case relay.RetryLater:
			if out.RetryAfter <= 0 {
				t.Errorf("RetryLater without a suggested delay: %+v", out)
			}
			held++
		default:
			t.Fatalf("Send while the pool is gone = %+v, want RetryLater", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := b.client.Status(); s.Phase != PhaseFailingOver {
		t.Errorf("Status while gone = %+v, want %s", s, PhaseFailingOver)
	}
	b.sim.PoolRecover(pools[0])
	outs := b.sendUntilDelivered(t, tg, "h-after", "recovered", 100)
	if last := outs[len(outs)-1]; last.Pool != poolHost(t, b.sim, pools[0]) {
		t.Errorf("delivered on %s, want the recovered home pool", last.Pool)
	}
	if n := len(b.sim.Messages()); n != 2 {
		t.Errorf("simulator accepted %d messages, want 2 (nothing accepted while gone)", n)
	}
	if st := b.sim.Stats(); st.ApplicationsCreated != 2 {
		t.Errorf("applications created = %d, want 2", st.ApplicationsCreated)
	}
}

func TestFailback(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	pools := b.sim.PoolNames()
	tg := target(3)
	if out := b.send(t, tg, "fb-0", "home"); out.Kind != relay.Delivered {
		t.Fatalf("first Send = %+v", out)
	}
	b.sim.SetHomePool(pools[1])
	b.sim.PoolGone(pools[0])
	outs := b.sendUntilDelivered(t, tg, "fb-1", "on backup", 100)
	if p := outs[len(outs)-1].Pool; p != poolHost(t, b.sim, pools[1]) {
		t.Fatalf("delivered on %s, want backup", p)
	}
	b.sim.PoolRecover(pools[0])
	b.sim.SetHomePool(pools[0])
	b.sim.PoolGone(pools[1])
	outs2 := b.sendUntilDelivered(t, tg, "fb-2", "home again", 100)
	if p := outs2[len(outs2)-1].Pool; p != poolHost(t, b.sim, pools[0]) {
		t.Fatalf("delivered on %s, want home after failback", p)
	}
	b.checkDelivered(t, append(outs, outs2...))
	if st := b.sim.Stats(); st.ApplicationsCreated != 3 {
		t.Errorf("applications created = %d, want 3", st.ApplicationsCreated)
	}
}

func TestDisplacedTwiceStops(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	tg := target(4)
	if out := b.send(t, tg, "d-0", "first"); out.Kind != relay.Delivered {
		t.Fatalf("first Send = %+v", out)
	}
	b.sim.DisplaceApplications()
	b.sendUntilDelivered(t, tg, "d-1", "after displacement", 50)
	b.sim.DisplaceApplications()
	var out relay.Outcome
	for i := range 50 {
		out = b.send(t, tg, fmt.Sprintf("d-2-%d", i), "second displacement")
		if out.Reason == string(ReasonStopped) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if out.Kind != relay.RetryLater || out.Reason != string(ReasonStopped) {
		t.Fatalf("Send after two displacements = %+v, want RetryLater/stopped", out)
	}
	if st := b.sim.Stats(); st.ApplicationsCreated != 2 {
		t.Errorf("applications created = %d, want 2 (one re-creation, then stop)", st.ApplicationsCreated)
	}
	if s := b.client.Status(); s.Phase != "stopped" {
		t.Errorf("Status = %+v, want stopped", s)
	}
}

func TestTokenRenewal(t *testing.T) {
	t.Parallel()
	t.Run("reactive_on_401", func(t *testing.T) {
		t.Parallel()
		// Tokens expire after 200 ms real time while expires_in says 20 s:
		// only the 401 path can keep the run going.
		b := setup(t, setupOpts{sim: func(c *ucwasim.Config) { c.TokenLifetime = 20 * time.Second }})
		var delivered atomic.Int32
		deadline := time.Now().Add(time.Second)
		for i := 0; time.Now().Before(deadline); i++ {
			if out := b.send(t, target(i%3), fmt.Sprintf("r-%d", i), "renew"); out.Kind == relay.Delivered {
				delivered.Add(1)
			} else {
				t.Errorf("Send = %+v, want delivered", out)
			}
			time.Sleep(10 * time.Millisecond)
		}
		st := b.sim.Stats()
		if st.TokensIssued < 3 || st.ApplicationsCreated != 1 {
			t.Errorf("tokens issued = %d, applications = %d; want renewals on one application", st.TokensIssued, st.ApplicationsCreated)
		}
	})
	t.Run("proactive_before_expiry", func(t *testing.T) {
		t.Parallel()
		// Real time: expires_in=2 s, renewal due at 1.6 s.
		b := setup(t, setupOpts{sim: func(c *ucwasim.Config) { c.TimeScale = 1; c.TokenLifetime = 2 * time.Second }})
		deadline := time.Now().Add(2500 * time.Millisecond)
		for i := 0; time.Now().Before(deadline); i++ {
			if out := b.send(t, target(1), fmt.Sprintf("p-%d", i), "renew"); out.Kind != relay.Delivered {
				t.Errorf("Send = %+v, want delivered", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
		st := b.sim.Stats()
		if st.TokensIssued < 2 {
			t.Errorf("tokens issued = %d, want a renewal", st.TokensIssued)
		}
		if n := st.Requests["sendMessage 401"]; n != 0 {
			t.Errorf("sendMessage got %d 401 answers; the token should be renewed before it expires", n)
		}
	})
}

// TestSendRidesOutQuickFailover: with the production failover timers, a
// Send made right after a 410 CannotRedirect, with the backup ready, waits
// for the rebuild due within a second or so instead of returning at once,
// and is Delivered on the backup by the same call, about 2 s at most
// after the 410. Whether the event channel met the 410 first or the send
// did itself.
func TestSendRidesOutQuickFailover(t *testing.T) {
	t.Parallel()
	for _, who := range []string{"event_channel", "send"} {
		t.Run(who, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{client: productionFailover})
			pools := b.sim.PoolNames()
			backup := poolHost(t, b.sim, pools[1])
			tg := target(1)
			if out := b.send(t, tg, "rq-0", "warm"); out.Kind != relay.Delivered {
				t.Fatalf("warm-up = %+v", out)
			}
			waitPollHeld(t, b.sim) // the next long poll is on the server
			b.sim.SetHomePool(pools[1])
			start := time.Now()
			if who == "event_channel" {
				b.sim.PoolGone(pools[0])
				waitStatus(t, b.client, "failing over", func(s Status) bool { return s.Phase == PhaseFailingOver })
			} else {
				b.sim.Inject(ucwasim.Fault{Pool: pools[0], Resource: "sendMessage", Status: 410, Code: "Gone", Subcode: "CannotRedirect"})
			}
			out := b.send(t, tg, "rq-1", "after the 410")
			took := time.Since(start)
			if out.Kind != relay.Delivered || out.Pool != backup {
				t.Fatalf("Send after the 410 = %+v, want delivered on the backup %s by the same call", out, backup)
			}
			if took > 2500*time.Millisecond {
				t.Errorf("delivered on the backup %v after the 410, want about 2s at most", took)
			}
			b.checkDelivered(t, []relay.Outcome{out})
			t.Logf("delivered on the backup %v after the 410", took)
		})
	}
}
