package ui

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// detailData is the page of one delivery.
type detailData struct {
	D        *store.DeliveryDetail
	Timeline []event
	Siblings []store.Delivery
	// Payload is the notification as received, indented when it is JSON.
	Payload string
	// Key is the Idempotency-Key the Redeliver form sends.
	Key string
	// Flash reports what a redelivery did.
	Flash string
}

// event is one line of a delivery's timeline.
type event struct {
	At    time.Time
	What  string
	Class string
	// Detail is said after What, in plain text.
	Detail string
}

func (c *Console) delivery(w http.ResponseWriter, r *http.Request, id *identity) {
	d, ok := c.loadDetail(w, r, id)
	if !ok {
		return
	}
	switch r.URL.Query().Get("done") {
	case "queued":
		d.Flash = "Queued again: a new attempt follows shortly."
	case "replayed":
		d.Flash = "This redelivery was already asked for with the same form; nothing more was queued."
	}
	c.render(w, r, http.StatusOK, "delivery", page{Title: "Delivery " + d.D.OperationID, Nav: "deliveries", User: id.user, CSRF: id.csrf,
		Bearer: id.bearer, Data: d})
}

func (c *Console) loadDetail(w http.ResponseWriter, r *http.Request, id *identity) (*detailData, bool) {
	op := r.PathValue("id")
	if len(op) > 50 {
		c.fail(w, r, id, http.StatusNotFound, "There is no delivery with that operationId.")
		return nil, false
	}
	dd, err := c.db.GetDelivery(r.Context(), op)
	if err != nil {
		c.failErr(w, r, id, err)
		return nil, false
	}
	siblings, err := c.db.NotificationDeliveries(r.Context(), dd.NotificationID)
	if err != nil {
		c.failErr(w, r, id, err)
		return nil, false
	}
	d := &detailData{D: dd, Timeline: timeline(dd), Payload: indent(dd.Payload), Key: "console-" + rand.Text()}
	for _, s := range siblings {
		if s.OperationID != dd.OperationID {
			d.Siblings = append(d.Siblings, s)
		}
	}
	return d, true
}

// indent pretty-prints a JSON payload; anything else is shown as it is.
func indent(raw []byte) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// timeline puts what happened to a delivery in order: received, the
// duplicates, each attempt, each redelivery (who asked), and how it ended.
func timeline(d *store.DeliveryDetail) []event {
	ev := []event{{At: d.ReceivedAt, What: "notification received", Class: "received"}}
	if !d.CreatedAt.Equal(d.ReceivedAt) {
		ev = append(ev, event{At: d.CreatedAt, What: "queued", Class: "pending"})
	} else {
		ev[0].What = "notification received and queued"
	}
	for _, at := range d.DuplicatesAt {
		ev = append(ev, event{At: at, What: "duplicate received", Class: "duplicate", Detail: "recognised, nothing sent"})
	}
	for _, a := range d.AttemptLog {
		detail := "as " + a.UCWAOperationID
		if a.Pool != "" {
			detail += " to pool " + a.Pool
		}
		switch {
		case a.CarriedBy != "":
			detail += ", carried in the message of " + a.CarriedBy + " (deliveries waiting for the recipient went as one message)"
		case a.Carried > 0:
			detail += fmt.Sprintf(", in one message with %d other deliveries waiting for the recipient", a.Carried)
		}
		ev = append(ev, event{At: a.StartedAt, What: fmt.Sprintf("attempt %d sent", a.Attempt), Class: "sending", Detail: detail})
		res := a.Outcome
		if a.Reason != "" {
			res += " (" + a.Reason + ")"
		}
		if a.Error != "" {
			res += ": " + a.Error
		}
		ev = append(ev, event{At: a.FinishedAt, What: fmt.Sprintf("attempt %d: %s", a.Attempt, a.Outcome), Class: "outcome-" + a.Outcome,
			Detail: fmt.Sprintf("%s after %s", res, seconds(a.LatencyMS/1000))})
	}
	for _, rd := range d.Redeliveries {
		ev = append(ev, event{At: rd.RequestedAt, What: "redelivered by " + rd.RequestedBy, Class: "redelivered",
			Detail: fmt.Sprintf("through the %s, was %s", rd.Via, rd.PreviousState)})
	}
	switch {
	case d.State == relay.StateDelivered && d.DeliveredAt != nil:
		ev = append(ev, event{At: *d.DeliveredAt, What: "delivered", Class: "delivered", Detail: "confirmed by the server"})
	case d.State.Final():
		ev = append(ev, event{At: d.UpdatedAt, What: string(d.State), Class: string(d.State), Detail: d.LastError})
	}
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].At.Before(ev[j].At) })
	return ev
}

// confirmRedeliver asks for a confirmation before redelivering: a plain
// page with the POST form, so no script is needed and a keyboard can do it.
func (c *Console) confirmRedeliver(w http.ResponseWriter, r *http.Request, id *identity) {
	d, ok := c.loadDetail(w, r, id)
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "confirm", page{Title: "Redeliver " + d.D.OperationID, Nav: "deliveries", User: id.user, CSRF: id.csrf,
		Bearer: id.bearer, Data: d})
}

// redeliver queues the delivery again with the form's Idempotency-Key (a
// second submission of the same form queues nothing), and shows it.
func (c *Console) redeliver(w http.ResponseWriter, r *http.Request, id *identity) {
	op := r.PathValue("id")
	key := r.PostFormValue("key")
	if key == "" {
		c.fail(w, r, id, http.StatusBadRequest, "The form lacks its key; go back, reload the page and try again.")
		return
	}
	res, err := c.redeliverOne(r, id, op, key)
	if err != nil {
		c.failErr(w, r, id, err)
		return
	}
	done := "queued"
	if res.Replayed {
		done = "replayed"
	}
	http.Redirect(w, r, "/ui/deliveries/"+op+"?done="+done, http.StatusSeeOther)
}
