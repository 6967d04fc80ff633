package app_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/deliver"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

// coalesceYAML is one route to one conversation, coalescing as told.
func coalesceYAML(sim *ucwasim.Sim, delivery string) string {
	return holding(relaytest.UCWAYAML(sim.DiscoveryURLs()) + fmt.Sprintf(`
conversations:
  oncall: { to: "sip:oncall@contoso.com", subject: "Production alerts" }
routes:
  - name: burst
    format: alertmanager
    conversations: [oncall]
    delivery: %s
`, delivery) + fastDelivery)
}

// holding gives config y (relaytest.UCWAYAML's timers, a 30 s delivery
// lease) a UCWA request timer long enough for a test to hold a send
// (ucwasim.Fault.Hold) while it posts a backlog on a slow machine, and the
// longer delivery lease that timer needs. A client that gave up on the
// held send would leave it accepted all the same, and the test would
// measure that instead.
func holding(y string) string {
	for _, r := range [][2]string{{"request_timeout: 5s", "request_timeout: 20s"}, {"lease: 30s", "lease: 90s"}} {
		if strings.Count(y, r[0]) != 1 {
			panic(fmt.Sprintf("the config no longer sets %q once: %s", r[0], y))
		}
		y = strings.Replace(y, r[0], r[1], 1)
	}
	return y
}

// release returns a func closing hold once, also called when the test
// ends: a test that fails before releasing does not leave the send held
// until the client's timer.
func release(t *testing.T, hold chan struct{}) func() {
	once := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(once)
	return once
}

// backlog posts n alert groups to the burst route while the first of them
// is held up in sending, so that a backlog builds for one recipient, and
// returns their operationIds in queue order once every delivery is final.
// A first notification, delivered before, has the session ready. faults
// are injected after the hold-up: they meet the sends that follow it.
func backlog(t *testing.T, sim *ucwasim.Sim, r *relayInstance, n int, faults ...ucwasim.Fault) ([]string, map[string]deliveryView) {
	t.Helper()
	r.waitFinal(30*time.Second, r.post("burst", relaytest.Notification("Warmup", 1, "firing"))...)
	hold := make(chan struct{})
	free := release(t, hold)
	sim.Inject(ucwasim.Fault{Resource: "sendMessage", Hold: hold})
	for _, f := range faults {
		sim.Inject(f)
	}
	// The first is claimed (and held up in sending) before the others
	// arrive: they wait behind it, and the next send carries them.
	ids := r.post("burst", relaytest.Notification("Burst000", 1, "firing"))
	waitState(t, r, ids[0], "sending")
	for i := 1; i < n; i++ {
		ids = append(ids, r.post("burst", relaytest.Notification(fmt.Sprintf("Burst%03d", i), 1, "firing"))...)
	}
	if d := r.delivery(ids[0]); d.State != "sending" {
		t.Fatalf("%s is %s once the backlog is in, want still sending: the client gave up on the held send", ids[0], d.State)
	}
	free()
	return ids, r.waitFinal(60*time.Second, ids...)
}

// TestCoalescedBacklog: a backlog for one recipient goes out in a few
// messages, each carrying as many deliveries as wait, oldest first, under
// a header; every delivery is delivered exactly once, in queue order,
// with its own attempt naming the message that carried it.
func TestCoalescedBacklog(t *testing.T) {
	sim := newSim(t)
	r := startRelay(t, relaytest.NewDatabase(t), coalesceYAML(sim, "{ coalesce_after: 3 }"))
	ids, got := backlog(t, sim, r, 40)

	msgs := sim.Messages()[1:] // after the warm-up
	byOp := map[string]ucwasim.Message{}
	combined := 0
	for _, m := range msgs {
		byOp[m.OperationID] = m
		if strings.Contains(m.Body, coalescedHeader) {
			combined++
		}
	}
	t.Logf("%d deliveries in %d messages, %d of them combined", len(ids), len(msgs), combined)
	if combined == 0 || len(msgs) >= len(ids) {
		t.Fatalf("%d messages (%d combined) for %d deliveries, want fewer, combined", len(msgs), combined, len(ids))
	}

	// Every text arrives once, and in queue order across the messages.
	var all strings.Builder
	for _, m := range msgs {
		all.WriteString(m.Body + "\n")
	}
	at := 0
	for i, id := range ids {
		d := got[id]
		if d.State != "delivered" || len(d.AttemptLog) != 1 {
			t.Fatalf("%s: %s with %d attempts (%s), want delivered with 1", id, d.State, len(d.AttemptLog), d.LastError)
		}
		if n := strings.Count(all.String(), d.Text); n != 1 {
			t.Errorf("delivery %d's text arrived %d times, want once", i, n)
		}
		pos := strings.Index(all.String(), d.Text)
		if pos < at {
			t.Errorf("delivery %d arrived before the one queued ahead of it", i)
		}
		at = pos

		// Its attempt names the message that carried it, and that message
		// holds its text.
		a := d.AttemptLog[0]
		m, ok := byOp[a.UCWAOperationID]
		if !ok || !strings.Contains(m.Body, d.Text) {
			t.Errorf("%s: attempt %+v names no message holding its text", id, a)
			continue
		}
		if a.CarriedBy != "" {
			head := got[a.CarriedBy]
			if len(head.AttemptLog) == 0 || head.AttemptLog[0].UCWAOperationID != a.UCWAOperationID || head.AttemptLog[0].Carried == 0 {
				t.Errorf("%s: carried by %s, whose attempt %+v did not send that message", id, a.CarriedBy, head.AttemptLog)
			}
		}
	}
	for _, m := range msgs {
		if len(m.Body) > 8192 {
			t.Errorf("message %s is %d bytes, over ingest.max_message_bytes", m.OperationID, len(m.Body))
		}
	}
	metrics := r.metrics()
	if !strings.Contains(metrics, "\nrelay_delivery_coalesced_sends_total "+fmt.Sprint(combined)+"\n") {
		t.Errorf("relay_delivery_coalesced_sends_total is not %d:\n%s", combined, grepLines(metrics, "relay_delivery_c"))
	}
	assertNoViolations(t, sim)
}

// TestCoalesceOff: a route with coalesce: false sends every delivery as a
// message of its own, whatever waits.
func TestCoalesceOff(t *testing.T) {
	sim := newSim(t)
	r := startRelay(t, relaytest.NewDatabase(t), coalesceYAML(sim, "{ coalesce: false }"))
	ids, got := backlog(t, sim, r, 12)
	if msgs := sim.Messages()[1:]; len(msgs) != len(ids) {
		t.Fatalf("%d messages for %d deliveries, want one each", len(msgs), len(ids))
	}
	for _, id := range ids {
		if d := got[id]; d.State != "delivered" || len(d.AttemptLog) != 1 || d.AttemptLog[0].CarriedBy != "" {
			t.Errorf("%s: %s, attempts %+v; want delivered on its own", id, d.State, d.AttemptLog)
		}
	}
	assertNoViolations(t, sim)
}

// TestCoalescedSendUnconfirmed: when the server never confirms a message
// carrying several deliveries, each of them counts an unconfirmed send
// and goes out again marked "(resent)": every text arrives once plus once
// per unconfirmed send, marked on each resend.
func TestCoalescedSendUnconfirmed(t *testing.T) {
	sim := newSim(t)
	r := startRelay(t, relaytest.NewDatabase(t), coalesceYAML(sim, "{ coalesce_after: 3 }"))
	const to = "sip:oncall@contoso.com"
	r.waitFinal(30*time.Second, r.post("burst", relaytest.Notification("Warmup", 1, "firing"))...)
	// Until a combined message has gone out, nothing is confirmed.
	sim.SetUnconfirmed(to, true)
	var ids []string
	for i := range 8 {
		ids = append(ids, r.post("burst", relaytest.Notification(fmt.Sprintf("Burst%03d", i), 1, "firing"))...)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !slices.ContainsFunc(sim.Messages(), func(m ucwasim.Message) bool { return strings.Contains(m.Body, coalescedHeader) }) {
		if time.Now().After(deadline) {
			t.Fatal("no combined message within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sim.SetUnconfirmed(to, false)
	got := r.waitFinal(60*time.Second, ids...)

	var all strings.Builder
	for _, m := range sim.Messages() {
		all.WriteString(m.Body + "\n")
	}
	carriedUnconfirmed := 0
	for _, id := range ids {
		d := got[id]
		if d.State != "delivered" {
			t.Errorf("%s: %s after %d unconfirmed sends (%s), want delivered", id, d.State, d.Unconfirmed, d.LastError)
		}
		if n, resent := strings.Count(all.String(), d.Text), strings.Count(all.String(), deliver.ResentMarker+d.Text); n != 1+d.Unconfirmed || resent != d.Unconfirmed {
			t.Errorf("%s: its text arrived %d times, %d of them marked resent; want %d, %d", id, n, resent, 1+d.Unconfirmed, d.Unconfirmed)
		}
		for _, a := range d.AttemptLog {
			if a.Outcome == "uncertain" && a.CarriedBy != "" {
				carriedUnconfirmed++
			}
		}
	}
	if carriedUnconfirmed == 0 {
		t.Error("no carried delivery recorded an unconfirmed send")
	}
	assertNoViolations(t, sim)
}

// TestCoalescedSendRefused: when the server refuses a message carrying
// several deliveries outright, none of them counts it and each goes out
// on its own; nothing is dead.
func TestCoalescedSendRefused(t *testing.T) {
	sim := newSim(t)
	r := startRelay(t, relaytest.NewDatabase(t), coalesceYAML(sim, "{ coalesce_after: 3, max_attempts: 1 }"))
	ids, got := backlog(t, sim, r, 8, ucwasim.Fault{Resource: "sendMessage", Status: 400, Code: "BadRequest", Subcode: "InvalidMessage"})

	msgs := sim.Messages()[1:]
	refusedOp := ""
	for _, id := range ids {
		d := got[id]
		if d.State != "delivered" {
			t.Errorf("%s: %s (%s), want delivered: a refused combined message costs no delivery an attempt", id, d.State, d.LastError)
			continue
		}
		if n := len(d.AttemptLog); n == 2 {
			refusedOp = d.AttemptLog[0].UCWAOperationID
			if d.AttemptLog[1].CarriedBy != "" || d.AttemptLog[1].Carried != 0 {
				t.Errorf("%s: sent again in a combined message %+v, want alone", id, d.AttemptLog[1])
			}
		}
	}
	if refusedOp == "" {
		for _, id := range ids {
			t.Logf("%s %s %+v", id, got[id].State, got[id].AttemptLog)
		}
		t.Fatalf("no delivery was refused in a combined message first: %d messages", len(msgs))
	}
	refused := 0
	for _, id := range ids {
		if a := got[id].AttemptLog; len(a) > 0 && a[0].UCWAOperationID == refusedOp {
			refused++
			if len(a) != 2 || a[0].Outcome != "retry" {
				t.Errorf("%s: attempts %+v, want the refused one (retry) and one alone", id, a)
			}
		}
	}
	if refused < 2 {
		t.Errorf("the refused message carried %d deliveries, want several", refused)
	}
	for _, m := range msgs {
		if _, ok := deliver.Sections(m.Body); ok {
			t.Errorf("message %s is combined: the refused deliveries must go alone (the server recorded no refused message)", m.OperationID)
		}
	}
	assertNoViolations(t, sim)
}

// coalescedHeader is in the header of every combined message.
const coalescedHeader = "notifications while delivery was catching up"

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// metrics returns relay's /metrics page.
func (r *relayInstance) metrics() string {
	r.t.Helper()
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestCoalescedOutcomeKeptThroughOutage: the database goes away while a
// combined message is held on the server, which takes it once the database
// is gone; the outcome of every delivery it carried
// is kept and written once the database is back, so none is sent again
// and each one's audit shows the message that delivered it.
func TestCoalescedOutcomeKeptThroughOutage(t *testing.T) {
	sim := newSim(t)
	proxy, dbURL := relaytest.NewProxy(t, relaytest.NewDatabase(t))
	r := startRelay(t, dbURL, holding(relaytest.UCWAYAML(sim.DiscoveryURLs())+`
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - name: burst
    format: alertmanager
    conversations: [oncall]
delivery:
  poll_interval: 50ms
  retry_base: 20ms
  retry_max: 200ms
  session_ttl: 15s
  lease: 30s
`))
	r.waitFinal(30*time.Second, r.post("burst", relaytest.Notification("Warmup", 1, "firing"))...)
	// The first send is held while the others queue; the combined one
	// after it is held until the database has gone away.
	first, combined := make(chan struct{}), make(chan struct{})
	freeFirst, freeCombined := release(t, first), release(t, combined)
	faults := sim.Stats().FaultsApplied
	sim.Inject(ucwasim.Fault{Resource: "sendMessage", Hold: first})
	sim.Inject(ucwasim.Fault{Resource: "sendMessage", Hold: combined})
	ids := r.post("burst", relaytest.Notification("Burst000", 1, "firing"))
	waitState(t, r, ids[0], "sending")
	for i := 1; i < 6; i++ {
		ids = append(ids, r.post("burst", relaytest.Notification(fmt.Sprintf("Burst%03d", i), 1, "firing"))...)
	}
	freeFirst()
	waitState(t, r, ids[2], "sending") // riding: the combined message is on its way
	waitHeld(t, sim, faults+2)
	proxy.Down()
	freeCombined() // the server takes it while the database is away
	time.Sleep(5 * time.Second)
	proxy.Up()
	got := r.waitFinal(30*time.Second, ids...)

	var all strings.Builder
	for _, m := range sim.Messages() {
		all.WriteString(m.Body + "\n")
	}
	for i, id := range ids {
		d := got[id]
		if d.State != "delivered" || len(d.AttemptLog) != 1 {
			t.Errorf("%s: %s with attempts %+v, want delivered on its one attempt", id, d.State, d.AttemptLog)
			continue
		}
		if n := strings.Count(all.String(), d.Text); n != 1 {
			t.Errorf("%s: its text arrived %d times, want once", id, n)
		}
		if a := d.AttemptLog[0]; i >= 2 && a.CarriedBy != ids[1] {
			t.Errorf("%s: attempt %+v, want it carried by %s's message", id, a, ids[1])
		}
	}
	if d := got[ids[1]]; d.AttemptLog[0].Carried != len(ids)-2 {
		t.Errorf("the combined message's head carried %d, want %d", d.AttemptLog[0].Carried, len(ids)-2)
	}
	if !strings.Contains(r.logs.String(), "delivery outcome recorded after the database came back") {
		t.Error("no outcome was kept through the outage: the test did not test it")
	}
	assertNoViolations(t, sim)
}

// waitHeld waits until the simulator has applied n faults in all: a
// request meeting a Hold fault is then held.
func waitHeld(t *testing.T, sim *ucwasim.Sim, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for sim.Stats().FaultsApplied < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d faults applied within 30s, want %d", sim.Stats().FaultsApplied, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitState waits until delivery id is in state.
func waitState(t *testing.T, r *relayInstance, id, state string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for r.delivery(id).State != state {
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s not %s within 30s", id, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
