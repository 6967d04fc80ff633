package ucwasim

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAckModel(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{TimeScale: 0.001})
	c := b.c
	r := c.do("POST", b.a.startMessaging, "application/json", `{"to":"sip:oncall@contoso.com","operationId":"inv-1"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("startMessaging = %d", r.status)
	}
	waitConnected(t, c, c.abs(r.header.Get("Location")))

	r1, b1 := c.pget(b.a.events)
	if r1.status != http.StatusOK || len(b1.Sender) == 0 {
		t.Fatalf("ack=1: %d %q", r1.status, r1.body)
	}
	if !strings.Contains(b1.Links["next"].Href, "ack=2") || !strings.Contains(b1.Links["self"].Href, "ack=1") {
		t.Fatalf("ack=1 links %+v", b1.Links)
	}

	// A repeated ack re-delivers the same batch.
	r1b, _ := c.pget(b.a.events)
	if !bytes.Equal(r1.body, r1b.body) {
		t.Fatalf("repeat of ack=1:\n%s\nwant\n%s", r1b.body, r1.body)
	}

	// ack=2 acknowledges batch 1 and, with nothing left to say, is
	// released empty after the (scaled) timeout.
	next := c.abs(b1.Links["next"].Href)
	r2, b2 := c.pget(next)
	if r2.status != http.StatusOK || len(b2.Sender) != 0 || !strings.Contains(b2.Links["next"].Href, "ack=3") {
		t.Fatalf("ack=2: %d %q", r2.status, r2.body)
	}
	noViolations(t, b.s)

	// Out of range, both ways: only a resync link to the oldest unacked batch.
	for _, ack := range []string{"ack=9", "ack=1"} {
		u := strings.Replace(next, "ack=2", ack, 1)
		r, body := c.pget(u)
		if r.status != http.StatusOK || len(body.Links) != 1 || !strings.Contains(body.Links["resync"].Href, "ack=2") {
			t.Fatalf("%s: %d %q, want only resync to ack=2", ack, r.status, r.body)
		}
	}
	hasViolation(t, b.s, "bad-ack")
}

func TestMediumPriorityHeldThenReleased(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{TimeScale: 0.001})
	c := b.c
	if r := c.do("POST", b.a.makeMeAvailable, "application/json", `{"signInAs":"Online","supportedModalities":["Messaging"]}`); r.status != http.StatusNoContent {
		t.Fatalf("makeMeAvailable = %d %q", r.status, r.body)
	}
	r, body := c.pget(b.a.events)
	if r.status != http.StatusOK || len(body.Sender) != 2 || body.Sender[0].Rel != "me" || body.Sender[1].Rel != "communication" {
		t.Fatalf("batch %q, want me then communication updated", r.body)
	}
	if r := c.do("POST", b.a.makeMeAvailable, "application/json", `{}`); r.status != http.StatusConflict {
		t.Errorf("second makeMeAvailable = %d, want 409", r.status)
	}
	noViolations(t, b.s)
}

func TestReportMyActivityBeforeAvailable(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	var me struct {
		Links links `json:"_links"`
	}
	b.c.do("GET", b.a.me, "", "").json(t, &me)
	if _, ok := me.Links["reportMyActivity"]; ok {
		t.Fatal("reportMyActivity link before makeMeAvailable")
	}
	// The application path is known from the server, but posting to it
	// before availability is the client's mistake.
	var path string
	for _, a := range b.s.liveApps() {
		path = a.activityPath
	}
	r := b.c.do("POST", b.s.PoolURL("fe1")+path, "", "")
	wantError(t, r, http.StatusConflict, "MakeMeAvailableRequired")
	hasViolation(t, b.s, "activity-before-available")
}

func TestApplicationDiesWithoutPGet(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{TimeScale: 0.0001}) // 15 min = 90 ms
	b.c.pget(b.a.events)                     // released after 18 ms
	var r resp
	for i := 0; i < 500; i++ {
		r = b.c.do("GET", b.a.self, "", "")
		if r.status != http.StatusOK {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantError(t, r, http.StatusNotFound, "ApplicationNotFound")
	if got := b.s.Stats().ApplicationsDeleted; got != 1 {
		t.Errorf("ApplicationsDeleted = %d, want 1", got)
	}
	noViolations(t, b.s)
}

func TestResumeAfterSilence(t *testing.T) {
	t.Parallel()
	// Resume after 1 min (60 ms); death only after 15 min (900 ms).
	b := setup(t, Config{TimeScale: 0.001, ResumeAfter: time.Minute})
	c := b.c
	c.do("POST", b.a.startMessaging, "application/json", `{"to":"sip:oncall@contoso.com"}`)
	_, b1 := c.pget(b.a.events)
	var convHref string
	for _, s := range b1.Sender {
		for _, e := range s.Events {
			if e.Link.Rel == "conversation" {
				convHref = c.abs(e.Link.Href)
			}
		}
	}
	if convHref == "" {
		t.Fatal("no conversation event")
	}
	time.Sleep(200 * time.Millisecond)
	r, b2 := c.pget(c.abs(b1.Links["next"].Href))
	if r.status != http.StatusOK || b2.Links["resume"].Href == "" || b2.Links["next"].Href != "" {
		t.Fatalf("after silence: %d %q, want a resume link instead of next", r.status, r.body)
	}
	if r := c.do("GET", convHref, "", ""); r.status != http.StatusNotFound {
		t.Errorf("conversation after resume = %d, want 404", r.status)
	}
	if r, _ := c.pget(c.abs(b2.Links["resume"].Href) + "&timeout=180"); r.status != http.StatusOK {
		t.Errorf("following resume = %d", r.status)
	}
	noViolations(t, b.s)
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()

	t.Run("ExpireTokens", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		b.s.ExpireTokens()
		r := b.c.send(cv, "op-1", "hi")
		href := tokenHref(t, r)
		if ct := r.header.Get("Content-Type"); ct != "text/html" {
			t.Errorf("401 Content-Type %q", ct)
		}
		r, _ = b.c.pget(b.a.events)
		tokenHref(t, r)
		b.c.getToken(href, "secret")
		if r := b.c.send(cv, "op-1", "hi"); r.status != http.StatusCreated {
			t.Fatalf("after renewal: %d", r.status)
		}
		noViolations(t, b.s)
	})

	t.Run("natural expiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{TokenLifetime: 60 * time.Second}) // 600 ms real
		var r resp
		for i := 0; i < 1000; i++ {
			r = b.c.do("GET", b.a.self, "", "")
			if r.status != http.StatusOK {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		href := tokenHref(t, r)
		b.c.getToken(href, "secret")
		if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusOK {
			t.Fatalf("application after renewal: %d", r.status)
		}
		noViolations(t, b.s)
	})

	t.Run("combined challenge", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, Config{CombinedChallenge: true})
		c := newClient(t)
		r := c.do("GET", s.PoolURL("fe1")+userPath, "", "")
		v := r.header.Values("WWW-Authenticate")
		if len(v) != 1 || !strings.Contains(v[0], "Bearer") || !strings.Contains(v[0], "MsRtcOAuth") {
			t.Fatalf("WWW-Authenticate %q, want one combined line", v)
		}
	})

	t.Run("pool scoped", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, Config{})
		c := newClient(t)
		c.signIn(s.DiscoveryURLs()[0], "secret")
		r := c.do("GET", s.PoolURL("fe2-backup")+userPath, "", "")
		if href := tokenHref(t, r); !strings.HasPrefix(href, s.PoolURL("fe2-backup")) {
			t.Errorf("challenge on fe2 points at %q", href)
		}
		noViolations(t, s)

		shared := startSim(t, Config{SharedTokens: true})
		c2 := newClient(t)
		c2.signIn(shared.DiscoveryURLs()[0], "secret")
		if r := c2.do("GET", shared.PoolURL("fe2-backup")+userPath, "", ""); r.status != http.StatusOK {
			t.Errorf("shared token on fe2 = %d, want 200", r.status)
		}
	})
}

// TestPGetOutlivesReadTimeout holds a P-GET longer than the server's read
// timeout: it must still be answered with an empty batch.
func TestPGetOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{TimeScale: 0.002, ReadTimeout: 100 * time.Millisecond}) // hold 180 s = 360 ms
	r, body := b.c.pget(b.a.events)
	if r.status != http.StatusOK || body.Links["next"].Href == "" {
		t.Fatalf("long P-GET = %d %q, want 200 with next", r.status, r.body)
	}
}

// TestLostBatchIsRedelivered drops the connection after the server formed
// batch 1; re-polling the same ack returns it.
func TestLostBatchIsRedelivered(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	r := b.c.do("POST", b.a.startMessaging, "application/json", `{"to":"sip:oncall@contoso.com"}`)
	waitConnected(t, b.c, b.c.abs(r.header.Get("Location")))
	b.s.Inject(Fault{Resource: "events", Reset: true, AfterEffect: true})
	fresh := newClient(t) // a fresh connection: no transparent retry by the transport
	fresh.setTok(b.c.getTok())
	if _, err := fresh.doErr(context.Background(), "GET", b.a.events, "", ""); err == nil {
		t.Fatal("P-GET survived the reset")
	}
	r1, body := b.c.pget(b.a.events)
	if r1.status != http.StatusOK || !strings.Contains(body.Links["self"].Href, "ack=1") || len(body.Sender) == 0 {
		t.Fatalf("re-poll of ack=1 = %d %q, want batch 1 with the events", r1.status, r1.body)
	}
	if got := b.s.Stats().Requests["events reset"]; got != 1 {
		t.Errorf(`Requests["events reset"] = %d, want 1`, got)
	}
	noViolations(t, b.s)
}
