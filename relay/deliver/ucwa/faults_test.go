package ucwa

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

func TestSendThrottled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter func() string
		code       string // "" = proxy-style HTML body
		wantAfter  func(time.Duration) bool
	}{
		{name: "retry_after_seconds", retryAfter: func() string { return "2" }, code: "ServiceUnavailable",
			wantAfter: func(d time.Duration) bool { return d == 2*time.Second }},
		{name: "retry_after_date", retryAfter: func() string { return time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat) },
			wantAfter: func(d time.Duration) bool { return d > time.Second && d <= 3*time.Second }},
		{name: "no_retry_after", retryAfter: func() string { return "" }, code: "ServiceUnavailable",
			wantAfter: func(d time.Duration) bool { return d > 0 && d <= 2*time.Second }},
		{name: "429", retryAfter: func() string { return "2" }, code: "TooManyRequests",
			wantAfter: func(d time.Duration) bool { return d == 2*time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{client: func(c *Config) { c.Timers.RetryMax = 3 * time.Second; c.Timers.RetryMin = 50 * time.Millisecond }})
			tg := target(1)
			if out := b.send(t, tg, "warm", "warm up"); out.Kind != relay.Delivered {
				t.Fatalf("warm-up = %+v", out)
			}
			status := http.StatusServiceUnavailable
			if tt.name == "429" {
				status = http.StatusTooManyRequests
			}
			b.sim.Inject(ucwasim.Fault{Resource: "sendMessage", Status: status, Code: tt.code, RetryAfter: tt.retryAfter()})
			out := b.send(t, tg, "t-1", "throttled")
			if out.Kind != relay.RetryLater || out.HTTPStatus != status || out.Reason != string(ReasonThrottled) || !tt.wantAfter(out.RetryAfter) || !out.Session {
				t.Fatalf("Send during %d = %+v", status, out)
			}
			// Within the server's delay the client does not ask again.
			before := b.sim.Stats().Requests["sendMessage "+itoa(status)]
			if out := b.send(t, tg, "t-2", "still throttled"); out.Kind != relay.RetryLater || out.HTTPStatus != 0 {
				t.Errorf("Send inside Retry-After = %+v, want RetryLater without a request", out)
			}
			if n := len(b.sim.Messages()); n != 1 {
				t.Errorf("simulator accepted %d messages, want only the warm-up", n)
			}
			if after := b.sim.Stats().Requests["sendMessage "+itoa(status)]; after != before {
				t.Errorf("sendMessage %d answers went from %d to %d during Retry-After", status, before, after)
			}
			time.Sleep(out.RetryAfter)
			outs := b.sendUntilDelivered(t, tg, "t-3", "after the delay", 20)
			b.checkDelivered(t, outs)
		})
	}
}

func itoa(n int) string {
	return string(rune('0'+n/100)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}

func TestSessionFaultsRecovered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fault    func(sim *ucwasim.Sim)
		wantApps int // applications created in total
		// rediscover: the fault starts the failover procedure; the server
		// hands the same (still live) application back, per the
		// same-endpointId rule of PROTOCOL §3.1.
		rediscover bool
		client     func(*Config)
	}{
		{name: "token_expired", fault: func(s *ucwasim.Sim) { s.ExpireTokens() }, wantApps: 1},
		{name: "application_killed", fault: func(s *ucwasim.Sim) { s.KillApplications() }, wantApps: 2},
		{name: "application_displaced_once", fault: func(s *ucwasim.Sim) { s.DisplaceApplications() }, wantApps: 2},
		{name: "event_channel_dropped", fault: func(s *ucwasim.Sim) { s.DropEventChannel() }, wantApps: 1},
		{name: "conversation_ended", fault: func(s *ucwasim.Sim) { s.EndConversations(target(1).To) }, wantApps: 1},
		{name: "event_channel_503", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "events", Status: 503, Count: 2})
			s.DropEventChannel()
		}, wantApps: 1},
		{name: "send_message_stale_404", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 404, Code: "NotFound"})
		}, wantApps: 1},
		{name: "send_message_stale_409", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 409, Code: "Conflict"})
		}, wantApps: 1},
		{name: "bad_gateway_rediscovers", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 502})
		}, wantApps: 1, rediscover: true},
		// A few 503s are throttling, not a pool failure (PROTOCOL §8.7).
		{name: "short_503_storm_throttles", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 503, Count: 5})
		}, wantApps: 1},
		// A storm that lasts (FailoverAfter answers and StormFailover) is.
		{name: "lasting_503_storm_rediscovers", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 503, Count: 6})
		}, wantApps: 1, rediscover: true, client: func(c *Config) { c.Timers.StormFailover = 20 * time.Millisecond }},
		// Answers over the body limit are lost answers: the session
		// retries or rebuilds, nothing is blamed on the message.
		{name: "event_channel_oversized", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "events", PadBody: 2 * maxEventBody})
			s.DropEventChannel()
		}, wantApps: 1},
		{name: "discovery_oversized", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "user", PadBody: 2 * maxBody})
			s.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 502})
		}, wantApps: 1, rediscover: true},
		{name: "application_oversized", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "applications", PadBody: 2 * maxBody})
			s.KillApplications()
		}, wantApps: 2, rediscover: true},
		{name: "send_message_500_not_acted", fault: func(s *ucwasim.Sim) {
			s.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 500, Code: "ServiceFailure", Subcode: "CallbackChannelError"})
		}, wantApps: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{client: func(c *Config) {
				c.Timers.MessageWait = 300 * time.Millisecond
				if tt.client != nil {
					tt.client(c)
				}
			}})
			tg := target(1)
			outs := []relay.Outcome{b.send(t, tg, "before", "before the fault")}
			if outs[0].Kind != relay.Delivered {
				t.Fatalf("Send before fault = %+v", outs[0])
			}
			waitPollHeld(t, b.sim) // the next long poll is on the server
			tt.fault(b.sim)
			time.Sleep(20 * time.Millisecond) // let the event channel notice
			outs = append(outs, b.sendUntilDelivered(t, tg, "after", "after the fault", 30)...)
			for _, o := range outs {
				if o.Kind == relay.Permanent {
					t.Errorf("outcome %+v: a recoverable fault must not be permanent", o)
				}
			}
			b.checkDelivered(t, outs)
			st := b.sim.Stats()
			if st.ApplicationsCreated != tt.wantApps {
				t.Errorf("applications created = %d, want %d", st.ApplicationsCreated, tt.wantApps)
			}
			if got := st.DiscoveryCalls["internal"] > 1; got != tt.rediscover {
				t.Errorf("rediscovered = %v (discovery calls %v), want %v", got, st.DiscoveryCalls, tt.rediscover)
			}
		})
	}
}

func TestInvitationOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		behavior   ucwasim.Behavior
		waitShort  bool // client invitation wait shorter than the server's answer
		wantKind   relay.OutcomeKind
		wantReason Reason
	}{
		{name: "declined", behavior: ucwasim.Behavior{Kind: ucwasim.Decline}, wantKind: relay.Permanent, wantReason: ReasonDeclined},
		{name: "not_found", behavior: ucwasim.Behavior{Kind: ucwasim.NotFound}, wantKind: relay.Permanent, wantReason: ReasonNotFound},
		{name: "forbidden", behavior: ucwasim.Behavior{Kind: ucwasim.Forbidden}, wantKind: relay.Permanent, wantReason: ReasonNotAllowed},
		{name: "unanswered", behavior: ucwasim.Behavior{Kind: ucwasim.Ignore}, wantKind: relay.RetryLater, wantReason: ReasonNoAnswer},
		{name: "offline", behavior: ucwasim.Behavior{Kind: ucwasim.Offline}, wantKind: relay.RetryLater, wantReason: ReasonUnavailable},
		{name: "do_not_disturb", behavior: ucwasim.Behavior{Kind: ucwasim.DND}, wantKind: relay.RetryLater, wantReason: ReasonUnavailable},
		{name: "no_completion_in_time", behavior: ucwasim.Behavior{Kind: ucwasim.Ignore, After: time.Minute}, waitShort: true,
			wantKind: relay.RetryLater, wantReason: ReasonNoAnswer},
	}
	for _, tt := range tests {
		for _, embed := range []bool{true, false} {
			t.Run(tt.name+map[bool]string{true: "", false: "/bare_links"}[embed], func(t *testing.T) {
				t.Parallel()
				testInvitationOutcome(t, tt.behavior, tt.waitShort, tt.wantKind, tt.wantReason, embed)
			})
		}
	}
}

func testInvitationOutcome(t *testing.T, behavior ucwasim.Behavior, waitShort bool, wantKind relay.OutcomeKind, wantReason Reason, embed bool) {
	b := setup(t, setupOpts{sim: func(c *ucwasim.Config) { c.EmbedResources = embed }, client: func(c *Config) {
		if waitShort {
			c.Timers.InvitationWait = 100 * time.Millisecond
		}
	}})
	tg := target(7)
	b.sim.SetRecipient(tg.To, behavior, ucwasim.Behavior{Kind: ucwasim.Accept})
	out := b.send(t, tg, "inv-1", "hello")
	if out.Kind != wantKind || out.Reason != string(wantReason) {
		t.Fatalf("Send = %+v, want %v/%s", out, wantKind, wantReason)
	}
	if wantKind == relay.RetryLater && out.RetryAfter <= 0 {
		t.Errorf("RetryAfter = %v, want a suggestion", out.RetryAfter)
	}
	if out.Session {
		t.Errorf("Session = true for a recipient's answer: %+v", out)
	}
	if !waitShort && out.Subcode == "" {
		t.Errorf("Subcode is empty in %+v", out)
	}
	if n := len(b.sim.Messages()); n != 0 {
		t.Fatalf("simulator accepted %d messages after a failed invitation", n)
	}
	b.client.lanesMu.Lock()
	lanes := len(b.client.lanes)
	b.client.lanesMu.Unlock()
	if lanes != 0 {
		t.Errorf("%d lanes kept after a failed invitation, want none", lanes)
	}
	// The script accepts the next attempt: the client invites again.
	if out := b.send(t, tg, "inv-2", "hello again"); out.Kind != relay.Delivered {
		t.Fatalf("second Send = %+v, want delivered", out)
	}
}

func TestMessageOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fault    ucwasim.Fault
		wantKind relay.OutcomeKind
		recorded bool // the simulator accepted the message
		newConv  bool // the next message goes to a fresh conversation
	}{
		{name: "delivery_failure", fault: ucwasim.Fault{Resource: "sendMessage", MessageFailure: true},
			wantKind: relay.RetryLater, recorded: true, newConv: true},
		{name: "ghost_delivery", fault: ucwasim.Fault{Resource: "sendMessage", Reset: true, AfterEffect: true},
			wantKind: relay.Delivered, recorded: true},
		{name: "ghost_delivery_without_event", fault: ucwasim.Fault{Resource: "sendMessage", Reset: true, AfterEffect: true, SuppressCompletion: true},
			wantKind: relay.Uncertain, recorded: true},
		{name: "completion_lost_read_back", fault: ucwasim.Fault{Resource: "sendMessage", SuppressCompletion: true},
			wantKind: relay.Delivered, recorded: true},
		{name: "connection_reset", fault: ucwasim.Fault{Resource: "sendMessage", Reset: true},
			wantKind: relay.Uncertain, recorded: false},
		{name: "entity_too_large", fault: ucwasim.Fault{Resource: "sendMessage", Status: 413, Code: "EntityTooLarge"},
			wantKind: relay.Permanent, recorded: false},
		// A 201 whose body is over the limit is an answer lost on the way:
		// only the event tells.
		{name: "oversized_answer", fault: ucwasim.Fault{Resource: "sendMessage", PadBody: 2 * maxBody},
			wantKind: relay.Delivered, recorded: true},
		{name: "oversized_answer_without_event", fault: ucwasim.Fault{Resource: "sendMessage", PadBody: 2 * maxBody, SuppressCompletion: true},
			wantKind: relay.Uncertain, recorded: true},
	}
	for _, tt := range tests {
		for _, embed := range []bool{true, false} {
			want := tt.wantKind
			if !embed && (tt.name == "ghost_delivery" || tt.name == "oversized_answer") {
				// No Location and a bare event link: nothing ties the
				// event to the message, so it cannot be confirmed.
				want = relay.Uncertain
			}
			t.Run(tt.name+map[bool]string{true: "", false: "/bare_links"}[embed], func(t *testing.T) {
				t.Parallel()
				testMessageOutcome(t, tt.fault, want, tt.recorded, tt.newConv, embed)
			})
		}
	}
}

func testMessageOutcome(t *testing.T, fault ucwasim.Fault, wantKind relay.OutcomeKind, recorded, newConv, embed bool) {
	b := setup(t, setupOpts{
		sim:    func(c *ucwasim.Config) { c.EmbedResources = embed },
		client: func(c *Config) { c.Timers.MessageWait = 300 * time.Millisecond },
	})
	tg := target(3)
	if out := b.send(t, tg, "m-0", "first"); out.Kind != relay.Delivered {
		t.Fatalf("first Send = %+v", out)
	}
	b.sim.Inject(fault)
	out := b.send(t, tg, "m-1", "faulty")
	if out.Kind != wantKind {
		t.Fatalf("Send = %+v, want %v", out, wantKind)
	}
	if _, ok := b.recorded()["m-1"]; ok != recorded {
		t.Errorf("simulator recorded m-1 = %v, want %v", ok, recorded)
	}
	if out := b.send(t, tg, "m-2", "after"); out.Kind != relay.Delivered {
		t.Fatalf("Send after fault = %+v", out)
	}
	rec := b.recorded()
	if got := rec["m-2"].Conversation != rec["m-0"].Conversation; got != newConv {
		t.Errorf("new conversation after fault = %v, want %v", got, newConv)
	}
}

func TestSlowResponses(t *testing.T) {
	t.Parallel()
	t.Run("start_messaging", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{client: func(c *Config) { c.Timers.Request = 200 * time.Millisecond }})
		b.sim.Inject(ucwasim.Fault{Resource: "startMessaging", Delay: 2 * time.Second})
		defer waitFaultDone(t, b, "startMessaging")
		out := b.send(t, target(4), "s-1", "slow")
		if out.Kind != relay.RetryLater || out.Reason != string(ReasonTimeout) {
			t.Fatalf("Send with slow startMessaging = %+v, want RetryLater/timeout", out)
		}
		outs := b.sendUntilDelivered(t, target(4), "s-2", "again", 10)
		b.checkDelivered(t, outs)
	})
	t.Run("send_message", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{client: func(c *Config) {
			c.Timers.Request = 200 * time.Millisecond
			c.Timers.MessageWait = 500 * time.Millisecond
		}})
		if out := b.send(t, target(5), "s-0", "warm"); out.Kind != relay.Delivered {
			t.Fatalf("warm-up = %+v", out)
		}
		b.sim.Inject(ucwasim.Fault{Resource: "sendMessage", Delay: 2 * time.Second})
		out := b.send(t, target(5), "s-1", "slow")
		_, rec := b.recorded()["s-1"]
		// Ambiguous: the request timed out after it was sent. Delivered only
		// with the server's event; otherwise Uncertain, never a retry.
		switch {
		case out.Kind == relay.Delivered && !rec:
			t.Fatalf("Send = delivered but the simulator has no such message")
		case out.Kind != relay.Delivered && out.Kind != relay.Uncertain:
			t.Fatalf("Send with slow sendMessage = %+v, want delivered or uncertain", out)
		}
		waitFaultDone(t, b, "sendMessage")
	})
}

// TestResume drops the event channel and lets the client stay silent past
// the server's resume threshold: the server drops every conversation and
// answers with resume; the client must forget its conversations too.
func TestResume(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		sim:    func(c *ucwasim.Config) { c.ResumeAfter = 5 * time.Second }, // 50 ms real
		client: func(c *Config) { c.Timers.RetryMin = 200 * time.Millisecond },
	})
	tg := target(1)
	if out := b.send(t, tg, "r-0", "before"); out.Kind != relay.Delivered {
		t.Fatalf("first Send = %+v", out)
	}
	waitPollHeld(t, b.sim) // the next long poll is on the server
	b.sim.DropEventChannel()
	// The client backs off 200 ms before polling again, then follows the
	// resume link it is given.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.logs.String(), "event channel resumed") {
		if time.Now().After(deadline) {
			t.Fatal("the client never saw a resume link within 10 s; the test proves nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	outs := b.sendUntilDelivered(t, tg, "r-1", "after resume", 20)
	rec := b.recorded()
	last := outs[len(outs)-1].OperationID
	if rec[last].Conversation == rec["r-0"].Conversation {
		t.Errorf("message after resume went to the old conversation %s", rec["r-0"].Conversation)
	}
	b.checkDelivered(t, outs)
}

// waitPollHeld waits until the simulator holds an event channel poll.
func waitPollHeld(t *testing.T, sim *ucwasim.Sim) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sim.HeldPolls() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no event channel poll held by the server after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFaultDone waits until the simulator finished the request that got a
// delay fault on resource. It finishes it even after the client gave up, and
// must do so before Close deletes the application: otherwise it blames the
// late request on the client as a use of a deleted application.
func waitFaultDone(t *testing.T, b *testBundle, resource string) {
	t.Helper()
	for range 1000 {
		for _, e := range b.sim.RequestLog() {
			if e.Fault && e.Resource == resource {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("the delayed %s request never finished", resource)
}
