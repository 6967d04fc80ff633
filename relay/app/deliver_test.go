package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

// TestDeliveryEndToEnd: Alertmanager payload → 2xx → message confirmed by
// the simulator → delivery delivered with its attempt on record.
func TestDeliveryEndToEnd(t *testing.T) {
	sim := newSim(t)
	r := startRelay(t, relaytest.NewDatabase(t), deliveryYAML(sim, ""))
	ids := r.post("prod", relaytest.Notification("HighCPU", 2, "firing"))
	got := r.waitFinal(30*time.Second, ids...)

	msgs := map[string]ucwasim.Message{}
	for _, m := range sim.Messages() {
		msgs[m.OperationID] = m
	}
	for _, id := range ids {
		d := got[id]
		if d.State != "delivered" || len(d.AttemptLog) != 1 {
			t.Fatalf("%s: state %s with %d attempts (%s), want delivered with 1", id, d.State, len(d.AttemptLog), d.LastError)
		}
		a := d.AttemptLog[0]
		m, ok := msgs[a.UCWAOperationID]
		if !ok {
			t.Fatalf("%s: the simulator never received operationId %s", id, a.UCWAOperationID)
		}
		if m.Body != d.Text || "sip:"+strings.TrimPrefix(m.Recipient, "sip:") != d.Recipient {
			t.Errorf("%s: simulator got %q for %s, want %q for %s", id, m.Body, m.Recipient, d.Text, d.Recipient)
		}
		if a.Outcome != "delivered" || a.Pool == "" {
			t.Errorf("%s: attempt %+v, want outcome delivered with its pool", id, a)
		}
	}
	assertNoViolations(t, sim)
}

// TestDeadLetterAndRedeliver: an unknown recipient fails for good; the
// delivery goes dead (kept, not deleted); redeliver puts it back and, once
// the recipient exists, it arrives.
func TestDeadLetterAndRedeliver(t *testing.T) {
	sim := newSim(t)
	sim.SetRecipient("sip:nobody@contoso.com", ucwasim.Behavior{Kind: ucwasim.NotFound})
	r := startRelay(t, relaytest.NewDatabase(t), deliveryYAML(sim, ""))
	ids := r.post("ghost", relaytest.Notification("Disk", 1, "firing"))
	d := r.waitFinal(30*time.Second, ids...)[ids[0]]
	if d.State != "dead" || len(d.AttemptLog) == 0 {
		t.Fatalf("state %s with %d attempts, want dead", d.State, len(d.AttemptLog))
	}
	// The recipient exists now; redeliver.
	sim.SetRecipient("sip:nobody@contoso.com", ucwasim.Behavior{Kind: ucwasim.Accept})
	if status, body := r.api(http.MethodPost, "/v1/deliveries/"+ids[0]+"/redeliver"); status != http.StatusAccepted {
		t.Fatalf("redeliver = %d %s, want 202", status, body)
	}
	if status, _ := r.api(http.MethodPost, "/v1/deliveries/NOPE-1/redeliver"); status != http.StatusNotFound {
		t.Errorf("redeliver unknown = %d, want 404", status)
	}
	d = r.waitFinal(30*time.Second, ids...)[ids[0]]
	if d.State != "delivered" {
		t.Fatalf("after redeliver: state %s (%s), want delivered", d.State, d.LastError)
	}
	if n := len(d.AttemptLog); n < 2 || d.AttemptLog[n-1].Outcome != "delivered" {
		t.Errorf("attempt log %+v, want the dead attempts kept and a delivered one last", d.AttemptLog)
	}
	assertNoViolations(t, sim)
}
