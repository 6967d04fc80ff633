package ucwa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

// tokenSetup returns a client (never started) and a token source for the
// simulator's home pool token endpoint.
func tokenSetup(t *testing.T) (*ucwasim.Sim, *tokenSource, *challenge) {
	t.Helper()
	sim, err := ucwasim.New(ucwasim.Config{Username: testUser, Password: testPassword, TimeScale: 0.01})
	if err != nil {
		t.Fatalf("ucwasim.New: %v", err)
	}
	c, err := New(Config{Username: testUser, Password: testPassword, DiscoveryURLs: sim.DiscoveryURLs(), Timers: testTimers()},
		slog.New(slog.DiscardHandler))
	if err != nil {
		sim.Close()
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, v := range sim.Violations() {
			t.Errorf("simulator violation: %+v", v)
		}
		sim.Close()
	})
	ch := &challenge{href: sim.PoolURL(sim.PoolNames()[0]) + "/WebTicket/oauthtoken", grants: []string{"password"}}
	return sim, newTokenSource(c), ch
}

// TestTokenSingleFlight: concurrent callers share one token request; a
// caller whose own context ends returns at once while the request goes on
// for the others; nothing holds the source's lock across the request.
func TestTokenSingleFlight(t *testing.T) {
	t.Parallel()
	sim, ts, ch := tokenSetup(t)
	const slow = 400 * time.Millisecond
	sim.Inject(ucwasim.Fault{Resource: "token", Delay: slow})

	start := time.Now()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		toks = map[string]int{}
	)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := ts.refresh(context.Background(), "", ch)
			if err != nil {
				t.Errorf("refresh: %v", err)
				return
			}
			mu.Lock()
			toks[tok]++
			mu.Unlock()
		}()
	}
	// A caller that gives up early gets its own context's error, at once.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := ts.refresh(ctx, "", ch)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("refresh with a short context = %v, want its deadline", err)
	}
	if d := time.Since(start); d >= slow {
		t.Errorf("the impatient caller returned after %v, not when its context ended", d)
	}
	// The token request is in flight; the lock is free.
	if !ts.mu.TryLock() {
		t.Errorf("the token source's lock is held while the token request is in flight")
	} else {
		ts.mu.Unlock()
	}
	wg.Wait()
	if len(toks) != 1 {
		t.Errorf("callers got %d different tokens (%v), want one shared", len(toks), len(toks))
	}
	if d := time.Since(start); d < slow {
		t.Errorf("the token came after %v, before the server answered", d)
	}
	if st := sim.Stats(); st.TokensIssued != 1 || st.Requests["token 200"] != 1 {
		t.Errorf("tokens issued = %d, token requests = %v; want one", st.TokensIssued, st.Requests)
	}
}

// TestTokenRenewalInBackground: a token due for renewal but still valid is
// used at once while the renewal runs; only the holder of no valid token
// waits.
func TestTokenRenewalInBackground(t *testing.T) {
	t.Parallel()
	sim, ts, ch := tokenSetup(t)
	first, err := ts.refresh(context.Background(), "", ch)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	ts.mu.Lock()
	ts.renewAt = time.Now().Add(-time.Second) // due, not expired
	ts.mu.Unlock()
	sim.Inject(ucwasim.Fault{Resource: "token", Delay: 400 * time.Millisecond})

	start := time.Now()
	for range 5 {
		tok, err := ts.current(context.Background())
		if err != nil || tok != first {
			t.Fatalf("current() = %v, %v; want the valid token at once", tok, err)
		}
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("current() took %v while a renewal was in flight", d)
	}
	// The renewal lands in the background.
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok, _ := ts.current(context.Background())
		if tok != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background renewal never replaced the token")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := sim.Stats().TokensIssued; n != 2 {
		t.Errorf("tokens issued = %d, want 2 (the first, one renewal)", n)
	}
}

// TestSlowTokenEndpointDoesNotStallSends: with a token endpoint that takes
// seconds, sends and the event channel go on with the current token while
// it is renewed.
func TestSlowTokenEndpointDoesNotStallSends(t *testing.T) {
	t.Parallel()
	// Real time: expires_in 20 s, renewal due at 5 s. The sends below come
	// well before the expiry however slow the machine, so only a client that
	// waited for a renewal it did not need would hold them up.
	b := setup(t, setupOpts{
		sim:    func(c *ucwasim.Config) { c.TimeScale = 1; c.TokenLifetime = 20 * time.Second },
		client: func(c *Config) { c.Timers.TokenRenewFraction, c.Timers.Request = 0.25, 10*time.Second },
	})
	if out := b.send(t, target(1), "sl-0", "warm"); out.Kind != relay.Delivered {
		t.Fatalf("warm-up = %+v", out)
	}
	warmed := time.Now() // the token was issued before this
	const renewal = 4 * time.Second
	b.sim.Inject(ucwasim.Fault{Resource: "token", Delay: renewal})
	time.Sleep(time.Until(warmed.Add(5*time.Second + 200*time.Millisecond))) // past the renewal time
	start := time.Now()
	for i := range 5 {
		out := b.send(t, target(1), fmt.Sprintf("sl-%d", i+1), "during the renewal")
		if out.Kind != relay.Delivered {
			t.Errorf("Send during the renewal = %+v", out)
		}
	}
	if d := time.Since(start); d > renewal/2 {
		t.Errorf("5 sends took %v while the token was renewed (the renewal takes %v); they waited for it", d, renewal)
	}
	waitFaultDone(t, b, "token")
	if n := b.sim.Stats().TokensIssued; n != 2 {
		t.Errorf("tokens issued = %d, want 2 (the first, one renewal)", n)
	}
}
