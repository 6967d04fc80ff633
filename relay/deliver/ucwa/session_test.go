package ucwa

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

func TestManyConversationsKeepOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	const convs, perConv = 100, 10
	// Several goroutines per target: Send serializes them per conversation;
	// each goroutine's own messages must arrive in its order.
	var wg sync.WaitGroup
	for i := range convs {
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range perConv {
					op := fmt.Sprintf("o-%d-%d-%d", i, g, n)
					out := b.send(t, target(i), op, op)
					if out.Kind != relay.Delivered {
						t.Errorf("Send(%s) = %+v", op, out)
					}
				}
			}()
		}
	}
	wg.Wait()
	last := map[string]int{} // recipient+goroutine -> last n
	perRecipient := map[string]int{}
	convOf := map[string]string{}
	for _, m := range b.sim.Messages() {
		var i, g, n int
		if _, err := fmt.Sscanf(m.OperationID, "o-%d-%d-%d", &i, &g, &n); err != nil {
			t.Fatalf("unexpected operationId %q", m.OperationID)
		}
		if want := target(i).To; !strings.EqualFold(strings.TrimPrefix(want, "sip:"), strings.TrimPrefix(m.Recipient, "sip:")) {
			t.Errorf("message %s went to %s, want %s", m.OperationID, m.Recipient, want)
		}
		key := fmt.Sprintf("%d-%d", i, g)
		if prev, ok := last[key]; ok && n <= prev {
			t.Errorf("message %s arrived after n=%d: order broken", m.OperationID, prev)
		}
		last[key] = n
		perRecipient[m.Recipient]++
		if c, ok := convOf[m.Recipient]; ok && c != m.Conversation {
			t.Errorf("recipient %s used conversations %s and %s; want one", m.Recipient, c, m.Conversation)
		}
		convOf[m.Recipient] = m.Conversation
	}
	b.client.lanesMu.Lock()
	lanes := len(b.client.lanes)
	b.client.lanesMu.Unlock()
	if lanes != convs {
		t.Errorf("%d lanes kept, want one per live conversation (%d)", lanes, convs)
	}
	if len(perRecipient) != convs {
		t.Errorf("messages reached %d recipients, want %d", len(perRecipient), convs)
	}
	for r, n := range perRecipient {
		if n != 2*perConv {
			t.Errorf("recipient %s got %d messages, want %d", r, n, 2*perConv)
		}
	}
	if st := b.sim.Stats(); st.MaxConcurrentPGets != 1 || st.ApplicationsCreated != 1 {
		t.Errorf("stats = %+v, want one application with one P-GET at a time", st)
	}
}

// TestSerializedInCallOrder checks that sends queued on one target go out
// in the order they were called, even while the first one is slow.
func TestSerializedInCallOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	tg := target(9)
	if out := b.send(t, tg, "q-0", "warm"); out.Kind != relay.Delivered {
		t.Fatalf("warm-up = %+v", out)
	}
	// The first send is held on the server until all five are queued.
	hold := make(chan struct{})
	free := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(free)
	b.sim.Inject(ucwasim.Fault{Resource: "sendMessage", Hold: hold})
	var wg sync.WaitGroup
	var finished atomic.Int32
	for i := 1; i <= 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out := b.send(t, tg, fmt.Sprintf("q-%d", i), "queued"); out.Kind != relay.Delivered {
				t.Errorf("Send(q-%d) = %+v", i, out)
			}
			finished.Add(1)
		}()
		// Fix the call order: the next send starts once this one is on the
		// target's lane (however slow the machine), and a moment more for
		// it to queue there.
		deadline := time.Now().Add(10 * time.Second)
		for laneUsers(b.client, tg)+int(finished.Load()) < i {
			if time.Now().After(deadline) {
				t.Fatalf("send q-%d never reached its lane", i)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
	}
	free()
	wg.Wait()
	var got []string
	for _, m := range b.sim.Messages() {
		got = append(got, m.OperationID)
	}
	if want := "q-0 q-1 q-2 q-3 q-4 q-5"; strings.Join(got, " ") != want {
		t.Errorf("accepted order = %v, want %s", got, want)
	}
}

// laneUsers is how many sends hold or wait for tg's lane.
func laneUsers(c *Client, tg relay.Target) int {
	c.lanesMu.Lock()
	defer c.lanesMu.Unlock()
	if l := c.lanes[keyOf(tg)]; l != nil {
		return l.users
	}
	return 0
}

func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		sim:    func(c *ucwasim.Config) { c.TokenLifetime = 20 * time.Second },
		client: func(c *Config) { c.Timers.MessageWait = 300 * time.Millisecond },
	})
	var errs []string
	record := func(out relay.Outcome, err error) {
		errs = append(errs, out.Detail, out.Reason)
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	tg := target(1)
	ctx := context.Background()
	record(b.client.Send(ctx, tg, "sec-0", "hello"))
	b.sim.ExpireTokens()
	record(b.client.Send(ctx, tg, "sec-1", "after expiry"))
	b.sim.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 503, Code: "ServiceUnavailable"})
	record(b.client.Send(ctx, tg, "sec-2", "throttled"))
	b.sim.Inject(ucwasim.Fault{Resource: "sendMessage", Reset: true})
	time.Sleep(60 * time.Millisecond)
	record(b.client.Send(ctx, tg, "sec-3", "reset"))
	b.sim.KillApplications()
	record(b.client.Send(ctx, tg, "sec-4", "killed"))
	pools := b.sim.PoolNames()
	b.sim.SetHomePool(pools[1])
	b.sim.PoolGone(pools[0])
	for i := range 30 {
		out, err := b.client.Send(ctx, tg, fmt.Sprintf("sec-5-%d", i), "failover")
		record(out, err)
		if out.Kind == relay.Delivered {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A wrong password, on a simulator of its own (it counts the refusal
	// as a violation): the token endpoint refuses, the client reports it.
	sim2, err := ucwasim.New(ucwasim.Config{Username: testUser, Password: testPassword, TimeScale: 0.01})
	if err != nil {
		t.Fatalf("ucwasim.New: %v", err)
	}
	defer sim2.Close()
	bad, err := New(Config{Username: testUser, Password: "wrong-" + testPassword, DiscoveryURLs: sim2.DiscoveryURLs(),
		Timers: testTimers()}, slog.New(slog.NewTextHandler(io.MultiWriter(b.logs), nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := bad.Start(sctx); err != nil {
		errs = append(errs, err.Error())
	} else {
		t.Errorf("Start with a wrong password succeeded")
	}
	cancel()
	record(bad.Send(ctx, tg, "sec-6", "bad password"))
	if err := bad.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, v := range sim2.Violations() {
		if v.Rule != "invalid-grant" {
			t.Errorf("simulator violation: %+v", v)
		}
	}

	// The tokens the simulator issued look like cwt=...; none may leak.
	all := b.logs.String() + "\n" + strings.Join(errs, "\n")
	if strings.Contains(all, testPassword) {
		t.Errorf("password found in logs or errors")
	}
	if m := regexp.MustCompile(`cwt=[A-Za-z0-9+/_\-]{6,}`).FindString(all); m != "" {
		t.Errorf("token %q found in logs or errors", m)
	}
	if !strings.Contains(b.logs.String(), "ucwa session ready") {
		t.Errorf("log capture is empty: the test would prove nothing")
	}
}

func TestCloseDeletesApplication(t *testing.T) {
	t.Parallel()
	sim, err := ucwasim.New(ucwasim.Config{Username: testUser, Password: testPassword, TimeScale: 0.01, EmbedResources: true})
	if err != nil {
		t.Fatalf("ucwasim.New: %v", err)
	}
	defer sim.Close()
	c, err := New(Config{Username: testUser, Password: testPassword, DiscoveryURLs: sim.DiscoveryURLs(), Timers: testTimers()},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if s := c.Status(); s.Phase != "ready" || !s.ApplicationAlive || s.Pool == "" {
		t.Errorf("Status after Start = %+v", s)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := sim.Stats(); st.ApplicationsCreated != 1 || st.ApplicationsDeleted != 1 {
		t.Errorf("stats = %+v, want the application created and deleted", st)
	}
	out, err := c.Send(ctx, target(1), "after-close", "x")
	if !errors.Is(err, ErrClosed) || out.Kind != relay.RetryLater {
		t.Errorf("Send after Close = %+v, %v; want RetryLater, ErrClosed", out, err)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, v := range sim.Violations() {
		t.Errorf("simulator violation: %+v", v)
	}

	// A client that never started closes without a request.
	idle, err := New(Config{Username: testUser, Password: testPassword, DiscoveryURLs: sim.DiscoveryURLs()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := idle.Close(ctx); err != nil {
		t.Errorf("Close of an idle client: %v", err)
	}
}

func TestSendValidation(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Username: "u", Password: "p", DiscoveryURLs: []string{"http://127.0.0.1:1/"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close(context.Background())
	tests := []struct {
		name string
		tg   relay.Target
		op   string
		text string
	}{
		{name: "empty_operation_id", tg: target(1), op: "", text: "x"},
		{name: "long_operation_id", tg: target(1), op: strings.Repeat("a", 51), text: "x"},
		{name: "non_ascii_operation_id", tg: target(1), op: "opé", text: "x"},
		{name: "space_in_operation_id", tg: target(1), op: "a b", text: "x"},
		{name: "not_sip", tg: relay.Target{To: "oncall@contoso.com"}, op: "ok", text: "x"},
		{name: "empty_text", tg: target(1), op: "ok", text: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.Send(context.Background(), tt.tg, tt.op, tt.text)
			if err != nil || out.Kind != relay.Permanent || out.Reason != string(ReasonInvalid) {
				t.Errorf("Send = %+v, %v; want Permanent/invalid_input", out, err)
			}
		})
	}
	if s := c.Status(); s.Phase != "idle" {
		t.Errorf("invalid sends started the session: %+v", s)
	}
}
