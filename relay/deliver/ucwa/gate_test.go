package ucwa

import (
	"net/http"
	"testing"
	"time"
)

// TestGate checks the gate's rules on a clock of its own: Retry-After holds
// every request back, a failing host gets about failingRate requests a
// second, a request that waits (the event channel) is served before sends,
// and any good answer lifts the limit.
func TestGate(t *testing.T) {
	t.Parallel()
	g := newGate(Timers{RetryMin: time.Second, RetryMax: time.Minute})
	const host = "fe1.contoso.com"
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	if d := g.admit(host, now, false); d != 0 {
		t.Fatalf("a healthy host holds a send back %v", d)
	}

	g.answer(host, http.StatusServiceUnavailable, 2*time.Second, now)
	if d := g.admit(host, now.Add(time.Second), true); d != time.Second {
		t.Errorf("1s into a 2s Retry-After: wait %v, want 1s", d)
	}
	now = now.Add(2 * time.Second)
	// A failing host: the burst left, then failingRate a second.
	sent := 0
	for i := range 100 {
		if g.admit(host, now.Add(time.Duration(i)*10*time.Millisecond), false) == 0 {
			sent++
		}
	}
	if sent < 4 || sent > 6 {
		t.Errorf("%d sends admitted in one second to a failing host, want about %v (burst %v)", sent, failingRate, failingBurst)
	}

	// The event channel waits its turn: sends leave it the next token.
	now = now.Add(5 * time.Second) // the bucket is full again
	done := g.waitTurn(host)
	for range int(failingBurst) - 1 {
		if d := g.admit(host, now, false); d != 0 {
			t.Fatalf("send held back %v with tokens to spare", d)
		}
	}
	if d := g.admit(host, now, false); d == 0 {
		t.Error("a send took the last token while the event channel waits")
	}
	if d := g.admit(host, now, true); d != 0 {
		t.Errorf("the waiting request was held back %v with a token left for it", d)
	}
	done()

	g.answer(host, http.StatusOK, 0, now)
	if d := g.admit(host, now, false); d != 0 {
		t.Errorf("after a good answer a send waits %v", d)
	}
}
