package ucwasim

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDiscoveryRootFaults(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{})
	c := newClient(t)
	s.Inject(Fault{Pool: "internal", Status: http.StatusNotFound, Count: -1})
	s.Inject(Fault{Pool: "external", Status: http.StatusFound, Location: "https://evil.example.net/", Count: 1})
	if r := c.do("GET", s.DiscoveryURLs()[0], "", ""); r.status != http.StatusNotFound {
		t.Errorf("internal root = %d, want 404", r.status)
	}
	c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r := c.do("GET", s.DiscoveryURLs()[1], "", "")
	if r.status != http.StatusFound || r.header.Get("Location") != "https://evil.example.net/" {
		t.Errorf("external root = %d %q, want 302 to another domain", r.status, r.header.Get("Location"))
	}
	// The external root works again; the internal one stays down.
	c.signIn(s.DiscoveryURLs()[1], "secret")
	if got := s.Stats().DiscoveryCalls["external"]; got != 1 {
		t.Errorf("DiscoveryCalls[external] = %d, want 1", got)
	}
	noViolations(t, s)
}

func TestOlderServerVersion(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.s.SetPoolVersion("fe1", 1)
	req, _ := http.NewRequest("GET", b.a.self, nil)
	req.Header.Set("Authorization", "Bearer "+b.c.getTok())
	req.Header.Set("X-MS-RequiresMinResourceVersion", "2")
	res, err := b.c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("pinned version 2 on a version 1 pool = %d, want 404", res.StatusCode)
	}
	if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusOK {
		t.Fatalf("without the pin = %d", r.status)
	}
}

func TestForbidInvalidTokens(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{ForbidInvalidTokens: true})
	b.s.ExpireTokens()
	r := b.c.do("GET", b.a.self, "", "")
	if r.status != http.StatusForbidden || r.header.Get("Warning") == "" {
		t.Fatalf("expired token = %d %v, want 403 with Warning", r.status, r.header)
	}
}

func TestOutstandingCap(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxOutstanding: 1})
	b.s.Inject(Fault{Resource: "application", Delay: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = b.c.doErr(ctx, "GET", b.a.self, "", "")
	}()
	for i := 0; b.s.outstanding.Load() == 0 && i < 5000; i++ {
		sleepBrief()
	}
	r := b.c.do("GET", b.a.me, "", "")
	cancel()
	<-done
	wantError(t, r, http.StatusTooManyRequests, "")
}

func TestActivityExpiry(t *testing.T) {
	t.Parallel()
	// Activity window 1 min = 60 ms; P-GET death 15 min = 900 ms.
	b := setup(t, Config{TimeScale: 0.001, ActivityTimeout: time.Minute})
	if r := b.c.do("POST", b.a.makeMeAvailable, "application/json", `{"signInAs":"Online"}`); r.status != http.StatusNoContent {
		t.Fatalf("makeMeAvailable = %d", r.status)
	}
	var r resp
	for i := 0; i < 500; i++ {
		r = b.c.do("GET", b.a.self, "", "")
		if r.status != http.StatusOK {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantError(t, r, http.StatusGone, "InactiveApplicationExpired")
	noViolations(t, b.s)
}

func TestRequestLogBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{RequestLogSize: 4})
	for i := 0; i < 10; i++ {
		b.c.do("GET", b.a.me, "", "")
	}
	log := b.s.RequestLog()
	if len(log) != 4 {
		t.Fatalf("RequestLog() has %d entries, want 4", len(log))
	}
	for _, e := range log {
		if e.Resource != "me" || e.Status != http.StatusOK {
			t.Errorf("entry %+v, want the latest GET me", e)
		}
	}
	if got := b.s.Stats().Requests["me 200"]; got != 10 {
		t.Errorf("Requests[me 200] = %d, want 10", got)
	}
}

func TestThreadIDConflict(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	body := `{"to":"sip:oncall@contoso.com","threadId":"4c1d2f0e"}`
	if r := b.c.do("POST", b.a.startMessaging, "application/json", body); r.status != http.StatusCreated {
		t.Fatalf("first = %d", r.status)
	}
	wantError(t, b.c.do("POST", b.a.startMessaging, "application/json", body), http.StatusConflict, "ThreadIdAlreadyExists")
}

func TestEarlyModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []EarlyMode{EarlyAlways, EarlyNever} {
		b := setup(t, Config{Early: mode, MessageStartedEvents: true})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		if r := b.c.send(cv, "op-1", "hi"); r.status != http.StatusCreated {
			t.Fatalf("mode %d: send = %d", mode, r.status)
		}
		first := b.l.waitFor(func(e ev) bool { return e.Link.Rel == "message" })
		if first.Type != "started" {
			t.Errorf("mode %d: first message event %q, want started", mode, first.Type)
		}
		b.l.waitFor(func(e ev) bool { return e.Link.Rel == "message" && e.Type == "completed" })
		noViolations(t, b.s)
	}
}

// TestBareLinks walks a conversation with embedding off: every event is a
// bare link and the client must GET the resources.
func TestBareLinks(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{})
	c := newClient(t)
	apps := c.signIn(s.DiscoveryURLs()[0], "secret")
	a := c.createApp(apps, "worker-a")
	l := c.startLoop(a.events)
	if r := c.do("POST", a.startMessaging, "application/json", `{"to":"sip:oncall@contoso.com","operationId":"inv-1"}`); r.status != http.StatusCreated {
		t.Fatalf("startMessaging = %d", r.status)
	}
	done := l.waitFor(func(e ev) bool { return e.Link.Rel == "messagingInvitation" && e.Type == "completed" })
	if done.Status != "Success" || len(done.Embedded) != 0 {
		t.Fatalf("completed %+v, want Success without _embedded", done)
	}
	var inv struct {
		Links links `json:"_links"`
	}
	c.do("GET", c.abs(done.Link.Href), "", "").json(t, &inv)
	var m struct {
		State string
		Links links `json:"_links"`
	}
	c.do("GET", c.abs(inv.Links["messaging"].Href), "", "").json(t, &m)
	if m.State != "Connected" || m.Links["sendMessage"].Href == "" {
		t.Fatalf("messaging %+v, want Connected with sendMessage", m)
	}
	r := c.send(conv{sendMessage: c.abs(m.Links["sendMessage"].Href)}, "op-1", "bare")
	if r.status != http.StatusCreated {
		t.Fatalf("send = %d", r.status)
	}
	e := l.waitFor(func(e ev) bool { return e.Link.Rel == "message" && e.Type == "completed" })
	if c.abs(e.Link.Href) != c.abs(r.header.Get("Location")) || e.Status != "Success" {
		t.Errorf("completed %+v does not match Location %q", e, r.header.Get("Location"))
	}
	noViolations(t, s)
}

func TestUnquotedChallengeHref(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{UnquotedChallengeHref: true})
	c := newClient(t)
	r := c.do("GET", s.PoolURL("fe1")+userPath, "", "")
	if href := tokenHref(t, r); href != s.PoolURL("fe1")+tokenPath {
		t.Fatalf("unquoted href parsed as %q", href)
	}
	c.signIn(s.DiscoveryURLs()[0], "secret")
	noViolations(t, s)
}

func TestCollapse(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Collapse: true, Early: EarlyAlways})
	// No P-GET yet: every event of the start stays queued, so the
	// invitation's started event is folded into its completed one.
	if r := b.c.do("POST", b.a.startMessaging, "application/json", `{"to":"sip:oncall@contoso.com"}`); r.status != http.StatusCreated {
		t.Fatalf("startMessaging = %d", r.status)
	} else {
		waitConnected(t, b.c, b.c.abs(r.header.Get("Location")))
	}
	_, body := b.c.pget(b.a.events)
	var types []string
	for _, s := range body.Sender {
		for _, e := range s.Events {
			if e.Link.Rel == "messagingInvitation" {
				types = append(types, e.Type)
			}
		}
	}
	if len(types) != 1 || types[0] != "completed" {
		t.Fatalf("invitation events %q, want only completed", types)
	}
}

func TestReplyAndConversations(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	l := b.loop()
	b.c.startConversation(b.a, l, "sip:oncall@contoso.com")
	ctl := newClient(t)
	if r := ctl.do("POST", b.s.ControlURL()+"/sim/reply", "application/json", `{"sip":"sip:oncall@contoso.com","text":"ack, on it"}`); r.status != http.StatusOK || !strings.Contains(string(r.body), `"conversations":1`) {
		t.Fatalf("POST /sim/reply = %d %q", r.status, r.body)
	}
	e := l.waitFor(func(e ev) bool { return e.Link.Rel == "message" && e.Type == "started" })
	var m struct {
		Direction string
		Links     links `json:"_links"`
	}
	if err := json.Unmarshal(e.Embedded["message"], &m); err != nil {
		t.Fatal(err)
	}
	if m.Direction != "Incoming" || !strings.Contains(m.Links["plainMessage"].Href, "ack%2C%20on%20it") {
		t.Errorf("incoming message %+v", m)
	}
	convs := b.s.Conversations()
	if len(convs) != 1 || convs[0].State != "Connected" || convs[0].InvitationState != "Connected" ||
		convs[0].InvitationOperationID != "inv-1" || !convs[0].Live {
		t.Errorf("Conversations() = %+v", convs)
	}
	noViolations(t, b.s)
}

func TestActivityGap(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.c.do("POST", b.a.makeMeAvailable, "", "")
	var me struct {
		Links links `json:"_links"`
	}
	b.c.do("GET", b.a.me, "", "").json(t, &me)
	href := me.Links["reportMyActivity"].Href
	if href == "" {
		t.Fatal("no reportMyActivity link after makeMeAvailable")
	}
	time.Sleep(20 * time.Millisecond)
	if r := b.c.do("POST", b.c.abs(href), "", ""); r.status != http.StatusNoContent {
		t.Fatalf("reportMyActivity = %d", r.status)
	}
	if gap := b.s.Stats().MaxActivityGap; gap < 20*time.Millisecond {
		t.Errorf("MaxActivityGap = %v, want >= 20ms", gap)
	}
	noViolations(t, b.s)
}

func TestRoguePGet(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	done := make(chan resp, 1)
	go func() {
		r, _ := b.c.doErr(context.Background(), "GET", b.a.events, "", "")
		done <- r
	}()
	waitHeld(t, b.s)
	b.s.ReplacePGets()
	wantError(t, <-done, http.StatusConflict, "PGetReplaced")
	if r, _ := b.c.pget(b.a.events + "&timeout=180"); r.status != http.StatusOK {
		t.Fatalf("re-poll = %d", r.status)
	}
	noViolations(t, b.s)
}

func TestDisplaceAndExpireActivityPresets(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ctl := newClient(t)
	b.c.do("POST", b.a.makeMeAvailable, "", "")
	if r := ctl.do("POST", b.s.ControlURL()+"/sim/applications/expire-activity", "", ""); r.status != http.StatusOK {
		t.Fatalf("expire-activity = %d", r.status)
	}
	wantError(t, b.c.do("GET", b.a.self, "", ""), http.StatusGone, "InactiveApplicationExpired")
	a2 := b.c.createApp(b.apps, "worker-b")
	if r := ctl.do("POST", b.s.ControlURL()+"/sim/applications/displace", "", ""); r.status != http.StatusOK {
		t.Fatalf("displace = %d", r.status)
	}
	wantError(t, b.c.do("GET", a2.self, "", ""), http.StatusGone, "TooManyApplications")
	noViolations(t, b.s)
}

func TestMessageInInvitation(t *testing.T) {
	t.Parallel()
	for _, events := range []bool{false, true} {
		b := setup(t, Config{InvitationMessageEvents: events})
		l := b.loop()
		body := `{"to":"sip:oncall@contoso.com","operationId":"inv-9","_links":{"message":{"href":"data:text/plain;base64,` +
			"aGVsbG8gZnJvbSB0aGUgaW52aXRl" + `"}}}`
		if r := b.c.do("POST", b.a.startMessaging, "application/json", body); r.status != http.StatusCreated {
			t.Fatalf("startMessaging = %d %q", r.status, r.body)
		}
		var sawMessage bool
		l.waitFor(func(e ev) bool {
			sawMessage = sawMessage || e.Link.Rel == "message"
			return e.Link.Rel == "messagingInvitation" && e.Type == "completed"
		})
		if sawMessage != events {
			t.Errorf("InvitationMessageEvents=%v: message event seen = %v", events, sawMessage)
		}
		m := b.s.Messages()
		if len(m) != 1 || m[0].Body != "hello from the invite" || m[0].OperationID != "inv-9" {
			t.Errorf("Messages() = %+v", m)
		}
		noViolations(t, b.s)
	}
	b := setup(t, Config{})
	r := b.c.do("POST", b.a.startMessaging, "application/json", `{"to":"sip:oncall@contoso.com","_links":{"message":{"href":"https://example.net/x"}}}`)
	wantError(t, r, http.StatusBadRequest, "ParameterValidationFailure")
}
