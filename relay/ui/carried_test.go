package ui_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

// TestDeliveryPageShowsTheCarryingMessage: a delivery sent inside another
// one's message (coalescing) links to it, in the attempts table and the
// timeline, and the carrying delivery says how many it carried.
func TestDeliveryPageShowsTheCarryingMessage(t *testing.T) {
	b := setup(t, nil)
	ctx := context.Background()
	b.webhook(t, relaytest.Notification("First", 1, "firing"))
	b.webhook(t, relaytest.Notification("Second", 1, "firing"))
	now := time.Now()
	var head store.Claimed
	claimed, err := b.db.Claim(ctx, now, store.ClaimOptions{Limit: 10, Lease: time.Minute, Gen: 1, Takeover: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range claimed {
		if c.Target.To == "sip:oncall@contoso.com" {
			head = c
		}
	}
	riders, err := b.db.ClaimRiders(ctx, head, store.RiderClaim{Now: now, Lease: time.Minute, Token: "t"},
		func(store.Rider) bool { return true })
	if err != nil || len(riders) != 1 {
		t.Fatalf("riders = %v, %v; want oncall's second delivery", riders, err)
	}
	rec := store.AttemptRecord{UCWAOperationID: head.OperationID + ".1", Outcome: "delivered", StartedAt: now, FinishedAt: now}
	headRec, riderRec := rec, rec
	headRec.Carried, riderRec.CarriedBy = 1, head.OperationID
	_, err = b.db.Finish(ctx, store.Finish{OperationID: head.OperationID, Attempt: 1, Gen: 1, State: relay.StateDelivered, Now: now,
		Record: &headRec, Carried: []store.Finish{{OperationID: riders[0].OperationID, Attempt: 1, Gen: 1,
			State: relay.StateDelivered, Now: now, Record: &riderRec}}})
	if err != nil {
		t.Fatal(err)
	}

	br := b.browser(t)
	br.signIn()
	p := br.get("/ui/deliveries/" + riders[0].OperationID)
	for _, want := range []string{`in the message of <a href="/ui/deliveries/` + head.OperationID + `">`,
		"carried in the message of " + head.OperationID} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the carried delivery's page lacks %q:\n%s", want, p.body)
		}
	}
	p = br.get("/ui/deliveries/" + head.OperationID)
	for _, want := range []string{"carrying 1 other deliveries", "in one message with 1 other deliveries"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the carrying delivery's page lacks %q", want)
		}
	}
}
