package ucwa

import (
	"net/http"
	"testing"
	"time"
)

// TestGate checks the gate's rules on a clock of its own: Retry-After holds
// every request back, a failing host gets at most failingRate requests in
// any one second, a request that waits (the event channel) is served before sends,
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
	// A failing host, asked every 10 ms for 3 s: never more than
	// failingRate in any one second, and no fewer either.
	var sent []time.Time
	for i := range 300 {
		at := now.Add(time.Duration(i) * 10 * time.Millisecond)
		if g.admit(host, at, false) == 0 {
			sent = append(sent, at)
		}
	}
	for i := range sent {
		if i+failingRate < len(sent) && sent[i+failingRate].Sub(sent[i]) < time.Second {
			t.Fatalf("%d sends within %v to a failing host: %v", failingRate+1, sent[i+failingRate].Sub(sent[i]), sent)
		}
	}
	if len(sent) < 3*failingRate-1 {
		t.Errorf("%d sends admitted in 3 s to a failing host, want about %d", len(sent), 3*failingRate)
	}

	// The event channel waits its turn: sends leave it the next token.
	now = now.Add(5 * time.Second) // the window is empty again
	done := g.waitTurn(host)
	for range failingRate - 1 {
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
