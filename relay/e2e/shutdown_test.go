package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

// TestGracefulShutdownDrains stops the relay with SIGTERM while slow sends
// are in flight: it lets them finish, records them, exits 0, and leaves no
// delivery claimed. A relay started afterwards delivers the rest, and no
// message arrives twice unmarked.
//
// Route "net" does not resend uncertain messages (delivery.uncertain:
// skip). A graceful shutdown leaves nothing uncertain, so its deliveries
// must all be delivered too.
func TestGracefulShutdownDrains(t *testing.T) {
	sim := newSim(t)
	dbURL := relaytest.NewDatabase(t)
	// Every send takes 300 ms: with one send in flight per recipient,
	// SIGTERM finds up to ten of them on the wire.
	slow := sim.Inject(ucwasim.Fault{Resource: "sendMessage", Delay: 300 * time.Millisecond, Count: -1})
	skip := map[string]string{"net": "delivery: { uncertain: skip }"}
	a := startRelayWith(t, "A", sim, dbURL, skip)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ids := newSender(t, a.base).stream(ctx, "drain", 30, 3, 0)
	if t.Failed() {
		t.FailNow()
	}
	waitMessages(t, sim, 10, 30*time.Second)
	// Let a send get on the wire after the last acceptance, then stop.
	time.Sleep(150 * time.Millisecond)
	atTerm := len(sim.Messages())
	if code := a.terminate(30 * time.Second); code != 0 {
		t.Fatalf("relay A exited with code %d after SIGTERM, want 0", code)
	}
	atExit := len(sim.Messages())
	// Which deliveries A sent, by the messages' own operationIds (the
	// deliveries a combined message carried are counted in the report
	// below as never sent: it is a diagnosis only).
	sentByA := attribute(sim.Messages(), nil)
	logs := a.logs.String()
	for _, bad := range []string{"sends still in flight after the drain timeout", "graceful shutdown cut short"} {
		if strings.Contains(logs, bad) {
			t.Errorf("relay A logged %q: the drain did not finish", bad)
		}
	}
	if !strings.Contains(logs, "session lease released") {
		t.Errorf("relay A did not log %q on its way out", "session lease released")
	}
	if atExit >= len(ids) {
		t.Fatalf("all %d deliveries were sent before A exited: the shutdown was not mid-stream", len(ids))
	}
	// Every send A started reached its end and was recorded: nothing is
	// left claimed for the next relay to guess about.
	claimed := claimedDeliveries(t, dbURL)
	if len(claimed) > 0 {
		never := 0
		for _, c := range claimed {
			if len(sentByA[c.id]) == 0 {
				never++
			}
		}
		t.Errorf("after a graceful shutdown %d deliveries are still claimed (state sending), %d of them never sent: %v",
			len(claimed), never, claimed)
	}

	sim.RemoveFault(slow)
	b := startRelayWith(t, "B", sim, dbURL, skip)
	views := waitFinal(t, b.base, ids, 60*time.Second)
	o := checkDelivered(t, sim, views)
	assertNoViolations(t, sim)
	t.Logf("%d deliveries; SIGTERM at %d messages, exit at %d; %d in all; %d deliveries duplicated (%d extra copies, all marked resent); %d sent once but marked resent",
		len(ids), atTerm, atExit, len(sim.Messages()), o.duplicates, o.extra, o.resentOnly)
}

type claimedDelivery struct {
	id, recipient string
	attempts      int
}

func (c claimedDelivery) String() string {
	return fmt.Sprintf("%s (%s, attempts %d)", c.id, c.recipient, c.attempts)
}

// claimedDeliveries returns the deliveries in state sending.
func claimedDeliveries(t *testing.T, dbURL string) []claimedDelivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT operation_id, recipient, attempts FROM deliveries WHERE state = 'sending' ORDER BY seq`)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimedDelivery, error) {
		var c claimedDelivery
		err := row.Scan(&c.id, &c.recipient, &c.attempts)
		return c, err
	})
	if err != nil {
		t.Fatalf("read claimed deliveries: %v", err)
	}
	return out
}
