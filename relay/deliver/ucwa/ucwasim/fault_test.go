package ucwasim

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestInjectedStatus(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		f          Fault
		retryAfter string
		json       bool
		subcode    string
	}{
		{name: "503 seconds", f: Fault{Resource: "sendMessage", Status: 503, RetryAfter: "5"}, retryAfter: "5"},
		{name: "503 date", f: Fault{Resource: "sendMessage", Status: 503, RetryAfter: date}, retryAfter: date},
		{name: "503 none", f: Fault{Resource: "sendMessage", Status: 503}},
		{name: "500 CallbackChannelError", f: Fault{Pool: "fe1", Resource: "sendMessage", Status: 500, Code: "ServiceFailure", Subcode: "CallbackChannelError"}, json: true, subcode: "CallbackChannelError"},
		{name: "429", f: Fault{Resource: "sendMessage", Status: 429, Code: "TooManyRequests"}, json: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{})
			cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
			b.s.Inject(tt.f)
			r := b.c.send(cv, "op-1", "hi")
			if r.status != tt.f.Status || r.header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("status %d Retry-After %q, want %d %q", r.status, r.header.Get("Retry-After"), tt.f.Status, tt.retryAfter)
			}
			isJSON := strings.HasPrefix(r.header.Get("Content-Type"), "application/json")
			if isJSON != tt.json {
				t.Errorf("Content-Type %q, want JSON %v", r.header.Get("Content-Type"), tt.json)
			}
			if tt.subcode != "" {
				wantError(t, r, tt.f.Status, tt.subcode)
			}
			if len(b.s.Messages()) != 0 {
				t.Error("faulted send was recorded as accepted")
			}
			// Count 0 means once. Sending again at once ignores a
			// Retry-After: served, but recorded.
			if r := b.c.send(cv, "op-2", "hi"); r.status != http.StatusCreated {
				t.Errorf("second send = %d, want 201", r.status)
			}
			if tt.retryAfter == "" {
				noViolations(t, b.s)
			} else if v := b.s.Violations(); len(v) != 1 || v[0].Rule != "retry-before-retry-after" {
				t.Errorf("Violations() = %+v, want one retry-before-retry-after", v)
			}
			if b.s.Stats().FaultsApplied != 1 {
				t.Errorf("FaultsApplied = %d", b.s.Stats().FaultsApplied)
			}
		})
	}
}

func TestFaultWindowAndCount(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.s.Inject(Fault{Resource: "application", Status: 503, From: time.Hour})
	if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusOK {
		t.Fatalf("fault before its window applied: %d", r.status)
	}
	b.s.ClearFaults()
	b.s.Inject(Fault{Resource: "application", Status: 502, Count: 3})
	for i := 0; i < 3; i++ {
		if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusBadGateway {
			t.Fatalf("request %d = %d, want 502", i, r.status)
		}
	}
	if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusOK {
		t.Fatalf("after Count: %d", r.status)
	}
	b.s.Inject(Fault{Resource: "application", Status: 504, Count: -1, Until: 300 * time.Millisecond})
	for i := 0; i < 2; i++ {
		if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusGatewayTimeout {
			t.Fatalf("unlimited fault, request %d = %d, want 504", i, r.status)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.c.do("GET", b.a.self, "", "").status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("fault outlived its Until")
		}
		time.Sleep(10 * time.Millisecond)
	}
	noViolations(t, b.s)
}

func TestSlowAndReset(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.s.Inject(Fault{Resource: "application", Delay: 30 * time.Millisecond})
	if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusOK {
		t.Fatalf("slow GET = %d", r.status)
	}
	// The log entry is written after the answer: wait for it.
	var slow *LogEntry
	for i := 0; slow == nil && i < 1000; i++ {
		for _, e := range b.s.RequestLog() {
			if e.Fault && e.Resource == "application" {
				slow = &e
			}
		}
		sleepBrief()
	}
	if slow == nil || slow.Latency < 30*time.Millisecond {
		t.Errorf("request log entry %+v, want a faulted entry of >= 30ms", slow)
	}
	b.s.Inject(Fault{Resource: "application", Reset: true})
	fresh := newClient(t) // a fresh connection: no transparent retry by the transport
	fresh.setTok(b.c.getTok())
	if _, err := fresh.doErr(context.Background(), "GET", b.a.self, "", ""); err == nil {
		t.Fatal("reset fault: request succeeded")
	}
	noViolations(t, b.s)
}

func TestMessageFaults(t *testing.T) {
	t.Parallel()

	t.Run("ghost delivery", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		b.s.Inject(Fault{Resource: "sendMessage", Reset: true, AfterEffect: true})
		u := cv.sendMessage + "?operationId=ghost-1"
		// POST is never retried by the transport.
		if _, err := b.c.doErr(context.Background(), "POST", u, "text/plain", "boo"); err == nil {
			t.Fatal("ghost delivery: request succeeded")
		}
		if m := b.s.Messages(); len(m) != 1 || m[0].OperationID != "ghost-1" {
			t.Fatalf("Messages() = %+v, want the ghost message", m)
		}
		e := b.l.waitFor(func(e ev) bool { return e.Link.Rel == "message" && e.Type == "completed" })
		if !strings.Contains(string(e.Embedded["message"]), "ghost-1") {
			t.Errorf("completed event %s", e.Embedded["message"])
		}
		noViolations(t, b.s)
	})

	t.Run("suppressed completion", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		b.s.Inject(Fault{Resource: "sendMessage", SuppressCompletion: true})
		if r := b.c.send(cv, "silent-1", "a"); r.status != http.StatusCreated {
			t.Fatalf("send = %d", r.status)
		}
		if r := b.c.send(cv, "loud-2", "b"); r.status != http.StatusCreated {
			t.Fatalf("send = %d", r.status)
		}
		e := b.l.waitFor(func(e ev) bool { return e.Link.Rel == "message" && e.Type == "completed" })
		if !strings.Contains(string(e.Embedded["message"]), "loud-2") {
			t.Errorf("first completion is %s, want loud-2 (silent-1 suppressed)", e.Embedded["message"])
		}
		if len(b.s.Messages()) != 2 {
			t.Errorf("Messages() = %d, want 2", len(b.s.Messages()))
		}
	})

	t.Run("delivery failure", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		b.s.Inject(Fault{Resource: "sendMessage", MessageFailure: true, Code: "RemoteFailure", Subcode: "Unreachable"})
		r := b.c.send(cv, "fail-1", "a")
		if r.status != http.StatusCreated {
			t.Fatalf("send = %d", r.status)
		}
		e := b.l.waitFor(func(e ev) bool { return e.Link.Rel == "message" && e.Type == "completed" })
		if e.Status != "Failure" || e.Reason == nil || e.Reason.Subcode != "Unreachable" {
			t.Errorf("completed %+v", e)
		}
		var m struct{ Status string }
		b.c.do("GET", b.c.abs(r.header.Get("Location")), "", "").json(t, &m)
		if m.Status != "Failed" {
			t.Errorf("message status %q, want Failed", m.Status)
		}
	})
}

func TestInvitationBehaviours(t *testing.T) {
	t.Parallel()
	tests := []struct {
		b       Behavior
		subcode string
	}{
		{Behavior{Kind: Decline}, "Declined"},
		{Behavior{Kind: Ignore}, "Timeout"},
		{Behavior{Kind: NotFound}, "DestinationNotFound"},
		{Behavior{Kind: Offline, After: time.Second}, "TemporarilyUnavailable"},
		{Behavior{Kind: DND}, "DoNotDisturb"},
		{Behavior{Kind: Forbidden}, "NotAllowed"},
		{Behavior{Kind: Decline, Code: "Forbidden", Subcode: "Busy"}, "Busy"},
	}
	for _, tt := range tests {
		t.Run(string(tt.b.Kind)+"/"+tt.subcode, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{})
			b.s.SetRecipient("sip:x@contoso.com", tt.b, Behavior{Kind: Accept})
			l := b.loop()
			r := b.c.do("POST", b.a.startMessaging, "application/json", `{"to":"sip:x@contoso.com","operationId":"inv-1"}`)
			if r.status != http.StatusCreated {
				t.Fatalf("startMessaging = %d", r.status)
			}
			e := l.waitFor(func(e ev) bool { return e.Link.Rel == "messagingInvitation" && e.Type == "completed" })
			if e.Status != "Failure" || e.Reason == nil || e.Reason.Subcode != tt.subcode {
				t.Fatalf("completed %+v, want Failure/%s", e, tt.subcode)
			}
			l.waitFor(func(e ev) bool {
				return e.Link.Rel == "messaging" && strings.Contains(string(e.Embedded["messaging"]), "Disconnected")
			})
			l.waitFor(func(e ev) bool { return e.Link.Rel == "conversation" && e.Type == "deleted" })
			// The script's second entry (and every later one) accepts.
			b.c.startConversation(b.a, l, "sip:x@contoso.com")
			noViolations(t, b.s)
		})
	}

	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.s.SetRecipient("sip:x@contoso.com", Behavior{Kind: Ignore})
		l := b.loop()
		r := b.c.do("POST", b.a.startMessaging, "application/json", `{"to":"sip:x@contoso.com"}`)
		var inv struct {
			State string
			Links links `json:"_links"`
		}
		b.c.do("GET", b.c.abs(r.header.Get("Location")), "", "").json(t, &inv)
		if inv.State != "Connecting" || inv.Links["cancel"].Href == "" {
			t.Fatalf("invitation %+v", inv)
		}
		if r := b.c.do("POST", b.c.abs(inv.Links["cancel"].Href), "", ""); r.status != http.StatusNoContent {
			t.Fatalf("cancel = %d", r.status)
		}
		e := l.waitFor(func(e ev) bool { return e.Link.Rel == "messagingInvitation" && e.Type == "completed" })
		if e.Reason == nil || e.Reason.Subcode != "Canceled" {
			t.Errorf("completed %+v", e)
		}
		noViolations(t, b.s)
	})

	t.Run("server ends conversation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{StaleSendStatus: 409})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		b.s.EndConversations("sip:oncall@contoso.com")
		b.l.waitFor(func(e ev) bool { return e.Link.Rel == "conversation" && e.Type == "deleted" })
		if r := b.c.send(cv, "op-1", "late"); r.status != http.StatusConflict {
			t.Errorf("send on ended conversation = %d, want 409", r.status)
		}
		noViolations(t, b.s)
	})

	t.Run("stopMessaging", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		var m struct {
			Links links `json:"_links"`
		}
		b.c.do("GET", cv.messaging, "", "").json(t, &m)
		if r := b.c.do("POST", b.c.abs(m.Links["stopMessaging"].Href), "", ""); r.status != http.StatusNoContent {
			t.Fatalf("stopMessaging = %d", r.status)
		}
		b.l.waitFor(func(e ev) bool { return e.Link.Rel == "conversation" && e.Type == "deleted" })
		if r := b.c.send(cv, "op-1", "late"); r.status != http.StatusNotFound {
			t.Errorf("send after stop = %d, want 404", r.status)
		}
		noViolations(t, b.s)
	})
}

func TestPresets(t *testing.T) {
	t.Parallel()

	t.Run("pool gone then failover", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		b.s.PoolGone("fe1")
		wantError(t, b.c.send(cv, "op-1", "hi"), http.StatusGone, "CannotRedirect")
		select {
		case r := <-b.l.errs:
			wantError(t, r, http.StatusGone, "CannotRedirect")
		case <-time.After(5 * time.Second):
			t.Fatal("held P-GET not released by PoolGone")
		}
		// F1 (no backup): discovery still points at fe1, which answers 410.
		var root struct {
			Links links `json:"_links"`
		}
		b.c.do("GET", b.s.DiscoveryURLs()[0], "", "").json(t, &root)
		wantError(t, b.c.do("GET", resolve(t, b.s.DiscoveryURLs()[0], root.Links["user"].Href), "", ""), http.StatusGone, "CannotRedirect")

		// F2: failover to the backup pool.
		b.s.SetHomePool("fe2-backup")
		c2 := newClient(t)
		apps := c2.signIn(b.s.DiscoveryURLs()[1], "secret")
		if !strings.HasPrefix(apps, b.s.PoolURL("fe2-backup")) {
			t.Fatalf("applications after failover %q", apps)
		}
		a2 := c2.createApp(apps, "worker-a")
		cv2 := c2.startConversation(a2, c2.startLoop(a2.events), "sip:oncall@contoso.com")
		if r := c2.send(cv2, "op-2", "after failover"); r.status != http.StatusCreated {
			t.Fatalf("send on fe2 = %d", r.status)
		}
		// fe1 recovers: the old application stays gone.
		b.s.PoolRecover("fe1")
		wantError(t, b.c.send(cv, "op-3", "old"), http.StatusNotFound, "ApplicationNotFound")
		if m := b.s.Messages(); len(m) != 1 || m[0].Pool != "fe2-backup" {
			t.Errorf("Messages() = %+v", m)
		}
		noViolations(t, b.s)
	})

	t.Run("user resource redirects after home moved", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{SharedTokens: true})
		b.s.SetHomePool("fe2-backup")
		var u struct {
			Links links `json:"_links"`
		}
		b.c.do("GET", b.s.PoolURL("fe1")+userPath, "", "").json(t, &u)
		if !strings.HasPrefix(u.Links["redirect"].Href, b.s.PoolURL("fe2-backup")) {
			t.Errorf("user on old pool: %+v, want a redirect to fe2", u.Links)
		}
	})

	t.Run("kill applications", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		b.s.KillApplications()
		wantError(t, b.c.send(cv, "op-1", "hi"), http.StatusNotFound, "ApplicationNotFound")
		select {
		case r := <-b.l.errs:
			wantError(t, r, http.StatusNotFound, "ApplicationNotFound")
		case <-time.After(5 * time.Second):
			t.Fatal("held P-GET not released")
		}
		noViolations(t, b.s)
	})

	t.Run("too many applications", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{MaxApplications: 1})
		again := b.c.do("POST", b.apps, "application/json", `{"userAgent":"relay-test/1.0","endpointId":"worker-a","culture":"en-US"}`)
		if again.status != http.StatusOK {
			t.Fatalf("same application again = %d, want 200 (reuse)", again.status)
		}
		b.c.createApp(b.apps, "worker-rogue")
		wantError(t, b.c.do("GET", b.a.self, "", ""), http.StatusGone, "TooManyApplications")
		noViolations(t, b.s)
	})

	t.Run("drop event channel", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		done := make(chan error, 1)
		go func() {
			_, err := b.c.doErr(context.Background(), "GET", b.a.events, "", "")
			done <- err
		}()
		waitHeld(t, b.s)
		b.s.DropEventChannel()
		if err := <-done; err == nil {
			t.Fatal("P-GET survived DropEventChannel")
		}
		// The same ack works again.
		b.s.Inject(Fault{Resource: "events", Status: 0}) // no-op fault: still answered normally
		r, _ := b.c.pget(b.a.events + "&timeout=180")
		if r.status != http.StatusOK {
			t.Fatalf("re-poll = %d", r.status)
		}
		noViolations(t, b.s)
	})
}

func TestControlAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
	ctl := newClient(t)
	r := ctl.do("POST", b.s.ControlURL()+"/sim/faults", "application/json",
		`{"resource":"sendMessage","status":503,"retryAfter":"2","delay":"1ms"}`)
	if r.status != http.StatusOK {
		t.Fatalf("POST /sim/faults = %d %q", r.status, r.body)
	}
	if r := b.c.send(cv, "op-1", "hi"); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "2" {
		t.Fatalf("send = %d", r.status)
	}
	if r := ctl.do("PUT", b.s.ControlURL()+"/sim/recipients/sip:no@contoso.com", "application/json", `[{"kind":"decline","after":"10ms"}]`); r.status != http.StatusOK {
		t.Fatalf("PUT recipients = %d %q", r.status, r.body)
	}
	if r := ctl.do("POST", b.s.ControlURL()+"/sim/faults", "application/json", `{"delay":"soon"}`); r.status != http.StatusBadRequest {
		t.Errorf("bad fault = %d, want 400", r.status)
	}
	b.c.send(cv, "op-2", "hi")
	var msgs []Message
	ctl.do("GET", b.s.ControlURL()+"/sim/messages", "", "").json(t, &msgs)
	if len(msgs) != 1 || msgs[0].OperationID != "op-2" {
		t.Errorf("GET /sim/messages = %+v", msgs)
	}
	var st Stats
	ctl.do("GET", b.s.ControlURL()+"/sim/stats", "", "").json(t, &st)
	if st.Requests["sendMessage 201"] != 1 || st.Requests["sendMessage 503"] != 1 {
		t.Errorf("stats requests %v", st.Requests)
	}
	for _, path := range []string{"/sim/tokens/expire", "/sim/applications/kill", "/sim/events/drop", "/sim/pools/fe1/gone", "/sim/pools/fe1/recover", "/sim/home?pool=fe1"} {
		if r := ctl.do("POST", b.s.ControlURL()+path, "", ""); r.status != http.StatusOK {
			t.Errorf("POST %s = %d", path, r.status)
		}
	}
	if r := ctl.do("POST", b.s.ControlURL()+"/sim/pools/nope/gone", "", ""); r.status != http.StatusNotFound {
		t.Errorf("unknown pool = %d", r.status)
	}
	var vs []Violation
	ctl.do("GET", b.s.ControlURL()+"/sim/violations", "", "").json(t, &vs)
	if len(vs) != 1 || vs[0].Rule != "retry-before-retry-after" { // op-2 went out within the 2 s
		t.Errorf("violations %+v, want one retry-before-retry-after", vs)
	}
	_ = json.Valid
}

// TestHeldRequest: a request meeting a fault with Hold is answered only
// once the test closes it.
func TestHeldRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	hold := make(chan struct{})
	b.s.Inject(Fault{Resource: "application", Hold: hold})
	answered := make(chan int, 1)
	go func() {
		r, err := b.c.doErr(context.Background(), "GET", b.a.self, "", "")
		if err != nil {
			t.Errorf("held GET: %v", err)
		}
		answered <- r.status
	}()
	// Held while nothing closes it: wait until the request is in, then a
	// little more.
	deadline := time.Now().Add(10 * time.Second)
	for b.s.Stats().FaultsApplied == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never met the fault")
		}
		sleepBrief()
	}
	select {
	case st := <-answered:
		t.Fatalf("held request answered %d before its hold was released", st)
	case <-time.After(100 * time.Millisecond):
	}
	close(hold)
	select {
	case st := <-answered:
		if st != http.StatusOK {
			t.Errorf("released request = %d, want 200", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("released request not answered")
	}
	noViolations(t, b.s)
}
