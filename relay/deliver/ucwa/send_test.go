package ucwa

import (
	"testing"

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
