package ucwa

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testUser     = "alertbot@contoso.com"
	testPassword = "s3cret-Pa55word-xyz"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testTimers are the production timers shrunk for a simulator at
// TimeScale 0.01. They bound waits only; tests never assert on timing.
func testTimers() Timers {
	t := DefaultTimers()
	t.Request = 3 * time.Second
	t.InvitationWait = 5 * time.Second
	t.MessageWait = 5 * time.Second
	t.RetryMin = 5 * time.Millisecond
	t.RetryMax = 100 * time.Millisecond
	t.FailoverMin = 10 * time.Millisecond
	t.FailoverMax = 100 * time.Millisecond
	t.InvitationRetry = time.Second
	return t
}

type testBundle struct {
	sim    *ucwasim.Sim
	client *Client
	logs   *syncBuffer
}

type setupOpts struct {
	sim    func(*ucwasim.Config)
	client func(*Config)
	// allow names a violation rule the test provokes on purpose.
	allow string
}

// setup starts a simulator and a client against it; both are closed when
// the test ends, and the simulator must have seen no protocol violation.
func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	scfg := ucwasim.Config{Username: testUser, Password: testPassword, TimeScale: 0.01, EmbedResources: true}
	if o.sim != nil {
		o.sim(&scfg)
	}
	sim, err := ucwasim.New(scfg)
	if err != nil {
		t.Fatalf("ucwasim.New: %v", err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{
		Username:      testUser,
		Password:      testPassword,
		DiscoveryURLs: sim.DiscoveryURLs(),
		Version:       "test",
		EndpointID:    "relay-test-endpoint",
		Timers:        testTimers(),
	}
	if o.client != nil {
		o.client(&cfg)
	}
	c, err := New(cfg, logger)
	if err != nil {
		sim.Close()
		t.Fatalf("New: %v", err)
	}
	b := &testBundle{sim: sim, client: c, logs: logs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, v := range sim.Violations() {
			if v.Rule != o.allow {
				t.Errorf("simulator violation: %s %s rule=%s detail=%s", v.Method, v.Path, v.Rule, v.Detail)
			}
		}
		sim.Close()
		if t.Failed() {
			t.Logf("client log:\n%s", tail(logs.String(), 6000))
		}
	})
	return b
}

// productionFailover gives a test client the production failover pauses.
func productionFailover(c *Config) {
	d := DefaultTimers()
	c.Timers.FailoverMin, c.Timers.FailoverMax = d.FailoverMin, d.FailoverMax
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func target(n int) relay.Target {
	return relay.Target{To: fmt.Sprintf("sip:user%d@contoso.com", n), Subject: "alerts"}
}

// send sends one message and fails the test on a context error.
func (b *testBundle) send(t *testing.T, tg relay.Target, op, text string) relay.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := b.client.Send(ctx, tg, op, text)
	if err != nil {
		t.Fatalf("Send(%s): error %v (outcome %+v)", op, err, out)
	}
	return out
}

// sendUntilDelivered retries until the message is delivered, the way the
// deliver worker would (a new operationId per attempt). It returns every
// outcome seen.
func (b *testBundle) sendUntilDelivered(t *testing.T, tg relay.Target, op, text string, max int) []relay.Outcome {
	t.Helper()
	var outs []relay.Outcome
	for i := range max {
		out := b.send(t, tg, fmt.Sprintf("%s-%d", op, i), text)
		outs = append(outs, out)
		if out.Kind == relay.Delivered {
			return outs
		}
		if out.Kind == relay.Permanent {
			t.Fatalf("Send(%s) = permanent %+v", op, out)
		}
		time.Sleep(min(max2(out.RetryAfter, 5*time.Millisecond), 200*time.Millisecond))
	}
	t.Fatalf("Send(%s): not delivered after %d attempts; last %+v", op, max, outs[len(outs)-1])
	return nil
}

func max2(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// recorded returns the simulator's accepted messages by operationId.
func (b *testBundle) recorded() map[string]ucwasim.Message {
	m := map[string]ucwasim.Message{}
	for _, msg := range b.sim.Messages() {
		m[msg.OperationID] = msg
	}
	return m
}

// checkDelivered asserts every Delivered outcome names a message the
// simulator accepted.
func (b *testBundle) checkDelivered(t *testing.T, outs []relay.Outcome) {
	t.Helper()
	rec := b.recorded()
	for _, o := range outs {
		if o.Kind == relay.Delivered {
			if _, ok := rec[o.OperationID]; !ok {
				t.Errorf("outcome %s Delivered but the simulator never accepted it", o.OperationID)
			}
		}
	}
}
