package ucwasim

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestFaultStormEverywhere checks that one Fault without Pool or Resource
// answers every UCWA request (the P-GET, sendMessage, discovery and the
// token endpoint included) until its Count runs out, and that the server
// then behaves normally.
func TestFaultStormEverywhere(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	l := b.loop()
	cv := b.c.startConversation(b.a, l, "sip:oncall@contoso.com")
	l.stop()
	// Let the abandoned P-GET reach the server and end, so that the fault
	// below answers only the requests this test sends.
	time.Sleep(20 * time.Millisecond)
	waitNotHeld(t, b.s)
	b.s.Inject(Fault{Status: 503, Code: "ServiceUnavailable", RetryAfter: "1", Count: 25})

	fe1 := b.s.PoolURL("fe1")
	form := url.Values{"grant_type": {"password"}, "username": {"alertbot@contoso.com"}, "password": {"secret"}}.Encode()
	distinct := []struct{ method, url, ctype, body string }{
		{"GET", b.s.DiscoveryURLs()[0], "", ""},
		{"GET", b.s.DiscoveryURLs()[1], "", ""},
		{"GET", fe1 + userPath, "", ""},
		{"POST", fe1 + tokenPath, "application/x-www-form-urlencoded", form},
		{"POST", b.apps, "application/json", `{"userAgent":"relay-test/1.0","endpointId":"worker-b","culture":"en-US"}`},
		{"GET", b.a.events + "&timeout=180", "", ""}, // the P-GET
		{"POST", b.a.startMessaging, "application/json", `{"to":"sip:oncall@contoso.com"}`},
		{"POST", cv.sendMessage + "?operationId=op-storm", "text/plain", "lost in the storm"},
		{"GET", b.a.me, "", ""},
	}
	check := func(what string, r resp) {
		t.Helper()
		var e struct{ Code string }
		r.json(t, &e)
		if r.status != http.StatusServiceUnavailable || e.Code != "ServiceUnavailable" || r.header.Get("Retry-After") != "1" {
			t.Fatalf("%s = %d %q Retry-After %q, want 503 ServiceUnavailable 1", what, r.status, r.body, r.header.Get("Retry-After"))
		}
	}
	for _, rq := range distinct {
		check(rq.method+" "+rq.url, b.c.do(rq.method, rq.url, rq.ctype, rq.body))
	}
	if v := b.s.Violations(); len(v) != 0 {
		t.Fatalf("one request per URL: violations %+v", v)
	}
	// A client that hammers one URL: still answered by the fault while it
	// lasts, and every request is too early.
	for i := len(distinct); i < 25; i++ {
		check("GET application", b.c.do("GET", b.a.self, "", ""))
	}
	if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusOK {
		t.Fatalf("after 25 faults: GET application = %d", r.status)
	}
	if early := earlyBy(t, b.s); len(early) != 25-len(distinct) {
		t.Fatalf("%d early requests recorded, want %d", len(early), 25-len(distinct))
	}
	st := b.s.Stats()
	if st.FaultsApplied != 25 || len(b.s.Messages()) != 0 {
		t.Fatalf("FaultsApplied = %d, messages %d; want 25, 0", st.FaultsApplied, len(b.s.Messages()))
	}

	// The storm is over; once the Retry-After has passed everything works.
	time.Sleep(time.Second + 50*time.Millisecond)
	b.s.ClearFaults() // none left anyway: nothing below may be faulted
	var appBody struct {
		Links links `json:"_links"`
	}
	b.c.do("GET", b.a.self, "", "").json(t, &appBody)
	l2 := b.c.startLoop(b.c.abs(appBody.Links["events"].Href))
	if r := b.c.send(cv, "op-after", "after the storm"); r.status != http.StatusCreated {
		t.Fatalf("send after the storm = %d", r.status)
	}
	e := l2.waitFor(func(e ev) bool { return e.Link.Rel == "message" && e.Type == "completed" })
	if !strings.Contains(string(e.Embedded["message"]), "op-after") || e.Status != "Success" {
		t.Errorf("completion %+v", e)
	}
	b.c.startConversation(b.a, l2, "sip:second@contoso.com")
	c2 := newClient(t)
	c2.createApp(c2.signIn(b.s.DiscoveryURLs()[0], "secret"), "worker-d")
	if n := len(b.s.Violations()); n != 25-len(distinct) {
		t.Errorf("new violations after the storm: %+v", b.s.Violations()[25-len(distinct):])
	}
	if got := b.s.Stats().FaultsApplied; got != 25 {
		t.Errorf("FaultsApplied = %d, want 25", got)
	}
}

func TestUserAgentNotAllowed(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.s.Inject(Fault{Resource: "applications", Status: 410, Code: "Gone", Subcode: "UserAgentNotAllowed"})
	body := `{"userAgent":"relay-test/1.0","endpointId":"worker-b","culture":"en-US"}`
	wantError(t, b.c.do("POST", b.apps, "application/json", body), http.StatusGone, "UserAgentNotAllowed")
	if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusOK {
		t.Errorf("GET application = %d: the fault is for application creation only", r.status)
	}
	if r := b.c.do("POST", b.apps, "application/json", body); r.status != http.StatusCreated {
		t.Errorf("second creation = %d, want 201", r.status)
	}
	noViolations(t, b.s)
}

// TestPoolDeadThenBack is F1 (no backup pool): every UCWA request to the
// pool gets 410 until PoolRecover; then old applications are gone and new
// ones work.
func TestPoolDeadThenBack(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	l := b.loop()
	cv := b.c.startConversation(b.a, l, "sip:oncall@contoso.com")
	b.s.PoolGone("fe1")
	select {
	case r := <-l.errs:
		wantError(t, r, http.StatusGone, "CannotRedirect")
	case <-time.After(5 * time.Second):
		t.Fatal("held P-GET not released")
	}
	fe1 := b.s.PoolURL("fe1")
	body := `{"userAgent":"relay-test/1.0","endpointId":"worker-a","culture":"en-US"}`
	for _, r := range []resp{
		b.c.doAnon("GET", fe1+userPath, "", ""),
		b.c.do("GET", fe1+userPath, "", ""),
		b.c.do("GET", fe1+rootPath, "", ""),
		b.c.do("POST", b.apps, "application/json", body),
		b.c.do("GET", b.a.self, "", ""),
		b.c.do("GET", b.a.events, "", ""),
		b.c.send(cv, "op-1", "into the void"),
	} {
		wantError(t, r, http.StatusGone, "CannotRedirect")
	}
	// Discovery still names fe1 (no backup).
	var root struct {
		Links links `json:"_links"`
	}
	b.c.do("GET", b.s.DiscoveryURLs()[0], "", "").json(t, &root)
	if !strings.HasPrefix(root.Links["user"].Href, fe1) {
		t.Errorf("root user link %q, want fe1", root.Links["user"].Href)
	}

	b.s.PoolRecover("fe1")
	wantError(t, b.c.send(cv, "op-2", "old conversation"), http.StatusNotFound, "ApplicationNotFound")
	c2 := newClient(t)
	a2 := c2.createApp(c2.signIn(b.s.DiscoveryURLs()[0], "secret"), "worker-a")
	cv2 := c2.startConversation(a2, c2.startLoop(a2.events), "sip:oncall@contoso.com")
	if r := c2.send(cv2, "op-3", "back"); r.status != http.StatusCreated {
		t.Fatalf("send after recovery = %d", r.status)
	}
	if m := b.s.Messages(); len(m) != 1 || m[0].OperationID != "op-3" || m[0].Pool != "fe1" {
		t.Errorf("Messages() = %+v", m)
	}
	noViolations(t, b.s)
}

// waitNotHeld waits until no application holds a P-GET.
func waitNotHeld(t *testing.T, s *Sim) {
	t.Helper()
	for range 2000 {
		held := false
		for _, a := range s.liveApps() {
			a.mu.Lock()
			held = held || a.ev.waiter != nil
			a.mu.Unlock()
		}
		if !held {
			return
		}
		sleepBrief()
	}
	t.Fatal("a P-GET is still held")
}
