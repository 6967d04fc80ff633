package ucwasim

import (
	"net/http"
	"strings"
	"testing"
)

func TestUnconfirmedRecipient(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MessageStartedEvents: true})
	l := b.loop()
	const quiet = "sip:quiet@contoso.com"
	b.s.SetUnconfirmed("Quiet@contoso.com", true) // normalized like SetRecipient
	cvQuiet := b.c.startConversation(b.a, l, quiet)
	cvLoud := b.c.startConversation(b.a, l, "sip:oncall@contoso.com")

	r := b.c.send(cvQuiet, "op-quiet", "never confirmed")
	if r.status != http.StatusCreated || r.header.Get("Location") == "" {
		t.Fatalf("send = %d, Location %q", r.status, r.header.Get("Location"))
	}
	loc := b.c.abs(r.header.Get("Location"))
	if r := b.c.send(cvLoud, "op-loud", "confirmed"); r.status != http.StatusCreated {
		t.Fatalf("send = %d", r.status)
	}
	// Events keep their order: a completion of op-quiet would come first.
	l.waitFor(func(e ev) bool {
		msg := string(e.Embedded["message"])
		if e.Link.Rel == "message" && e.Type == "completed" && strings.Contains(msg, "op-quiet") {
			t.Fatalf("op-quiet completed: %+v", e)
		}
		return e.Link.Rel == "message" && e.Type == "completed" && strings.Contains(msg, "op-loud")
	})
	var m struct{ Status, OperationID string }
	b.c.do("GET", loc, "", "").json(t, &m)
	if m.Status != "Pending" || m.OperationID != "op-quiet" {
		t.Errorf("message resource %+v, want op-quiet Pending", m)
	}
	if ms := b.s.Messages(); len(ms) != 2 || ms[0].OperationID != "op-quiet" || ms[0].Recipient != quiet {
		t.Errorf("Messages() = %+v, want op-quiet then op-loud", ms)
	}

	// Confirmed again: the next message completes, the old one stays Pending.
	b.s.SetUnconfirmed(quiet, false)
	if r := b.c.send(cvQuiet, "op-quiet-2", "confirmed now"); r.status != http.StatusCreated {
		t.Fatalf("send = %d", r.status)
	}
	e := l.waitFor(func(e ev) bool { return e.Link.Rel == "message" && e.Type == "completed" })
	if !strings.Contains(string(e.Embedded["message"]), "op-quiet-2") || e.Status != "Success" {
		t.Errorf("completion %+v %s, want op-quiet-2 Success", e, e.Embedded["message"])
	}
	b.c.do("GET", loc, "", "").json(t, &m)
	if m.Status != "Pending" {
		t.Errorf("old message status %q, want still Pending", m.Status)
	}
	noViolations(t, b.s)
}

func TestUnconfirmedMessageInInvitation(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{InvitationMessageEvents: true})
	b.s.SetUnconfirmed("sip:quiet@contoso.com", true)
	l := b.loop()
	body := `{"to":"sip:quiet@contoso.com","operationId":"inv-q","_links":{"message":{"href":"data:text/plain,hi"}}}`
	if r := b.c.do("POST", b.a.startMessaging, "application/json", body); r.status != http.StatusCreated {
		t.Fatalf("startMessaging = %d %q", r.status, r.body)
	}
	l.waitFor(func(e ev) bool {
		if e.Link.Rel == "message" {
			t.Fatalf("message event %+v for an unconfirmed recipient", e)
		}
		return e.Link.Rel == "messagingInvitation" && e.Type == "completed"
	})
	if m := b.s.Messages(); len(m) != 1 || m[0].OperationID != "inv-q" {
		t.Errorf("Messages() = %+v", m)
	}
	noViolations(t, b.s)
}

func TestUnconfirmedControl(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{})
	ctl := newClient(t)
	u := s.ControlURL() + "/sim/recipients/sip:quiet@contoso.com/unconfirmed"
	for _, tt := range []struct {
		body   string
		status int
		on     bool
	}{
		{`{"on":true}`, http.StatusOK, true},
		{`{}`, http.StatusBadRequest, true},
		{`{"on":false}`, http.StatusOK, false},
	} {
		if r := ctl.do("PUT", u, "application/json", tt.body); r.status != tt.status {
			t.Errorf("PUT %s = %d, want %d", tt.body, r.status, tt.status)
		}
		if got := s.isUnconfirmed("sip:quiet@contoso.com"); got != tt.on {
			t.Errorf("after PUT %s: unconfirmed = %v, want %v", tt.body, got, tt.on)
		}
	}
}
