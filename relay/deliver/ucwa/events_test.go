package ucwa

import (
	"context"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

// TestEventChannelFollowsRetryAfter: a storm of 503 with Retry-After: 1 on
// the event channel alone, about 8 answers. The poll goes again when the
// server said, not on a growing backoff of its own (production RetryMin
// and RetryMax: 1, 2, 4, 8 s...), so once the storm is over a message's
// confirmation, and with it the delivery, comes within about a second.
func TestEventChannelFollowsRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{client: func(c *Config) {
		d := DefaultTimers()
		c.Timers.RetryMin, c.Timers.RetryMax = d.RetryMin, d.RetryMax
		c.Timers.MessageWait = 20 * time.Second // only the event confirms
	}})
	tg := target(1)
	if out := b.send(t, tg, "er-0", "warm"); out.Kind != relay.Delivered {
		t.Fatalf("warm-up = %+v", out)
	}
	waitPollHeld(t, b.sim) // the next long poll is on the server
	const storm = 8 * time.Second
	stormEnd := time.Now().Add(storm)
	b.sim.Inject(ucwasim.Fault{Resource: "events", Status: 503, Code: "ServiceUnavailable", RetryAfter: "1", Count: -1, Until: storm})
	b.sim.DropEventChannel() // the held long poll ends: the next one meets the storm
	time.Sleep(time.Until(stormEnd))

	var out relay.Outcome
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		o, err := b.client.Send(ctx, tg, "er-"+itoa(i+1), "after the storm")
		cancel()
		if err != nil {
			t.Fatalf("Send after the storm: %v (outcome %+v)", err, o)
		}
		out = o
		if out.Kind != relay.RetryLater || time.Since(stormEnd) > 15*time.Second {
			break
		}
		// The host's last Retry-After may reach past the storm.
		time.Sleep(max(out.RetryAfter, 5*time.Millisecond))
	}
	took := time.Since(stormEnd)
	if out.Kind != relay.Delivered {
		t.Fatalf("Send after the storm = %+v, want delivered", out)
	}
	if took > 3*time.Second {
		t.Errorf("delivered %v after the storm ended, want about 1s (the storm's Retry-After)", took)
	}
	if n := b.sim.Stats().Requests["events 503"]; n < 4 {
		t.Errorf("the event channel met the storm %d times, want about 8", n)
	}
	t.Logf("delivered %v after the storm; %d event channel answers 503", took, b.sim.Stats().Requests["events 503"])
}
