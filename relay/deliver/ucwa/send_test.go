package ucwa

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

func TestSendHappyPath(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"embedded", "bare_links", "combined_challenge"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{sim: func(c *ucwasim.Config) {
				c.EmbedResources = mode != "bare_links"
				c.CombinedChallenge = mode == "combined_challenge"
			}})
			tg := relay.Target{To: "sip:oncall@contoso.com", Subject: "Alertmanager", Importance: "Urgent"}
			var outs []relay.Outcome
			for i, text := range []string{"first [FIRING] HighCPU", "second ✓ unicode", "third"} {
				op := "dlv-" + string(rune('a'+i)) + "-01"
				out := b.send(t, tg, op, text)
				if out.Kind != relay.Delivered {
					t.Fatalf("Send(%s) = %+v, want delivered", op, out)
				}
				if out.OperationID != op || out.Pool == "" || out.HTTPStatus != 201 || out.Reason != "ok" {
					t.Errorf("Send(%s) outcome fields = %+v", op, out)
				}
				outs = append(outs, out)
			}
			msgs := b.sim.Messages()
			if len(msgs) != 3 {
				t.Fatalf("simulator recorded %d messages, want 3", len(msgs))
			}
			for i, m := range msgs {
				if m.OperationID != outs[i].OperationID {
					t.Errorf("message %d operationId = %q, want %q", i, m.OperationID, outs[i].OperationID)
				}
				if m.ContentType != "text/plain" {
					t.Errorf("message %d content type = %q", i, m.ContentType)
				}
				if m.Conversation != msgs[0].Conversation {
					t.Errorf("message %d went to conversation %q, want reuse of %q", i, m.Conversation, msgs[0].Conversation)
				}
			}
			if msgs[1].Body != "second ✓ unicode" {
				t.Errorf("body = %q", msgs[1].Body)
			}
			st := b.sim.Stats()
			if st.ApplicationsCreated != 1 || st.MaxConcurrentPGets != 1 {
				t.Errorf("stats = %+v, want one application and one P-GET at a time", st)
			}
			b.checkDelivered(t, outs)
		})
	}
}

// TestSendWaitsBrieflyForConfirmationAfterCancel: the caller stops waiting
// (its claim lapsed) after the server took the message; the confirmation
// that arrives a moment later still makes it Delivered, so the message is
// not counted unconfirmed and sent again.
func TestSendWaitsBrieflyForConfirmationAfterCancel(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	tg := target(1)
	if out := b.send(t, tg, "warm-1", "first"); out.Kind != relay.Delivered {
		t.Fatalf("first send: %+v", out)
	}
	// The poll after the first message waits on the server; it brings the
	// second one's confirmation. The poll after that is held until the test
	// releases it, so the third message's confirmation cannot come before
	// its caller gives up.
	waitPollHeld(t, b.sim)
	hold := make(chan struct{})
	free := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(free)
	b.sim.Inject(ucwasim.Fault{Resource: "events", Hold: hold})
	if out := b.send(t, tg, "warm-2", "second"); out.Kind != relay.Delivered {
		t.Fatalf("second send: %+v", out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		out relay.Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := b.client.Send(ctx, tg, "late-confirm", "third")
		done <- result{out, err}
	}()
	// The server takes the message; a moment for its 201 to reach the
	// client, then the caller gives up, and a moment later the
	// confirmation comes.
	waitRecorded(t, b, "late-confirm")
	time.Sleep(200 * time.Millisecond)
	select {
	case res := <-done:
		t.Fatalf("Send returned %+v, %v before its caller gave up: the test proves nothing", res.out, res.err)
	default:
	}
	cancel()
	time.Sleep(300 * time.Millisecond)
	free()
	res := <-done
	out, err := res.out, res.err
	if out.Kind != relay.Delivered || err != nil {
		t.Fatalf("Send = %+v, %v; want delivered: the confirmation came within the grace", out, err)
	}
	if n := len(b.sim.Messages()); n != 3 {
		t.Errorf("simulator has %d messages, want 3", n)
	}
}

// TestConfirmByReadWaitsForThrottledHost: a message's completion event is
// lost and, when the wait for it ends, the host has just asked for a pause
// (503 with Retry-After on another send). The read of the message waits
// for the pause rather than giving up, so the message is Delivered, not
// Uncertain and resent.
func TestConfirmByReadWaitsForThrottledHost(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{client: func(c *Config) { c.Timers.MessageWait = 500 * time.Millisecond }})
	tg, other := target(1), target(2)
	for i, x := range []relay.Target{tg, other} {
		if out := b.send(t, x, "cr-warm-"+string(rune('a'+i)), "warm"); out.Kind != relay.Delivered {
			t.Fatalf("warm-up = %+v", out)
		}
	}
	b.sim.Inject(ucwasim.Fault{Resource: "sendMessage", SuppressCompletion: true})
	res := make(chan relay.Outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, _ := b.client.Send(ctx, tg, "cr-1", "completion lost")
		res <- out
	}()
	waitRecorded(t, b, "cr-1")
	// Within the 500 ms wait for the completion: the host asks for 2 s.
	b.sim.Inject(ucwasim.Fault{Resource: "sendMessage", Status: 503, Code: "ServiceUnavailable", RetryAfter: "2"})
	if out := b.send(t, other, "cr-2", "throttled"); out.Kind != relay.RetryLater || out.HTTPStatus != 503 {
		t.Fatalf("Send during the pause = %+v, want RetryLater 503", out)
	}
	out := <-res
	if out.Kind != relay.Delivered {
		t.Errorf("Send whose completion was lost = %+v, want Delivered by reading the message after the pause", out)
	}
	if n := b.sim.Stats().Requests["message 200"]; n != 1 {
		t.Errorf("the message was read %d times, want once", n)
	}
}
