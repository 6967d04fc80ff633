package ucwasim

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// bundle is a signed-in client with an application and a running loop.
type bundle struct {
	s    *Sim
	c    *client
	apps string
	a    app
	l    *loop
}

func setup(t *testing.T, cfg Config) *bundle {
	t.Helper()
	if !cfg.EmbedResources {
		cfg.EmbedResources = true
	}
	s := startSim(t, cfg)
	c := newClient(t)
	apps := c.signIn(s.DiscoveryURLs()[0], "secret")
	a := c.createApp(apps, "worker-a")
	return &bundle{s: s, c: c, apps: apps, a: a}
}

func (b *bundle) loop() *loop {
	b.l = b.c.startLoop(b.a.events)
	return b.l
}

func wantError(t *testing.T, r resp, status int, subcode string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %q", r.status, status, r.body)
	}
	if subcode == "" {
		return
	}
	var e struct{ Code, Subcode string }
	if err := json.Unmarshal(r.body, &e); err != nil || e.Subcode != subcode {
		t.Fatalf("error body %q, want subcode %q", r.body, subcode)
	}
	if r.header.Get("X-MS-Server-Fqdn") == "" || r.header.Get("X-Ms-diagnostics") == "" {
		t.Errorf("error without X-MS-Server-Fqdn / X-Ms-diagnostics: %v", r.header)
	}
}

func TestStrictness(t *testing.T) {
	t.Parallel()

	t.Run("built URL", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		u := b.apps + "/1187/communication/messagingInvitations"
		r := b.c.do("POST", u, "application/json", `{"to":"sip:oncall@contoso.com"}`)
		wantError(t, r, http.StatusNotFound, "")
		hasViolation(t, b.s, "unissued-url")
	})

	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.c.setTok("")
		r := b.c.do("POST", b.a.startMessaging, "application/json", `{"to":"sip:oncall@contoso.com"}`)
		tokenHref(t, r)
		hasViolation(t, b.s, "no-token")
	})

	t.Run("anonymous user GET is not a violation", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, Config{})
		c := newClient(t)
		c.signIn(s.DiscoveryURLs()[1], "secret")
		noViolations(t, s)
	})

	t.Run("send before connected", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.s.SetRecipient("sip:slow@contoso.com", Behavior{Kind: Ignore})
		l := b.loop()
		r := b.c.do("POST", b.a.startMessaging, "application/json", `{"to":"sip:slow@contoso.com","operationId":"inv-1"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("startMessaging = %d", r.status)
		}
		e := l.waitFor(func(e ev) bool { return e.Link.Rel == "messaging" })
		u := b.c.abs(e.Link.Href) + "/messages?operationId=op-1" // built from the messaging link
		r = b.c.do("POST", u, "text/plain", "too early")
		wantError(t, r, http.StatusNotFound, "")
		hasViolation(t, b.s, "send-before-connected")
		if n := len(b.s.Messages()); n != 0 {
			t.Errorf("Messages() has %d, want 0", n)
		}
	})

	t.Run("concurrent P-GETs", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		first := make(chan resp, 1)
		go func() {
			r, _ := b.c.doErr(t.Context(), "GET", b.a.events, "", "")
			first <- r
		}()
		waitHeld(t, b.s)
		r := make(chan resp, 1)
		go func() {
			r2, _ := b.c.doErr(t.Context(), "GET", b.a.events, "", "")
			r <- r2
		}()
		wantError(t, <-first, http.StatusConflict, "PGetReplaced")
		hasViolation(t, b.s, "concurrent-pget")
		if got := b.s.Stats().MaxConcurrentPGets; got != 2 {
			t.Errorf("MaxConcurrentPGets = %d, want 2", got)
		}
		b.s.DropEventChannel()
		<-r
	})

	t.Run("operationId too long", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		r := b.c.send(cv, strings.Repeat("x", 51), "hi")
		wantError(t, r, http.StatusBadRequest, "ParameterValidationFailure")
		hasViolation(t, b.s, "operationid-too-long")
		if r := b.c.send(cv, strings.Repeat("x", 50), "hi"); r.status != http.StatusCreated {
			t.Errorf("50-char operationId: status %d, want 201", r.status)
		}
	})

	t.Run("missing operationId", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		r := b.c.do("POST", cv.sendMessage+"?OperationContext=x", "text/plain", "hi")
		wantError(t, r, http.StatusBadRequest, "ParameterValidationFailure")
		hasViolation(t, b.s, "missing-operationid")
	})

	t.Run("wrong content type", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		u := cv.sendMessage + "?operationId=op-1"
		r := b.c.do("POST", u, "application/json", `"hi"`)
		wantError(t, r, http.StatusUnsupportedMediaType, "")
		hasViolation(t, b.s, "wrong-content-type")
		if r := b.c.do("POST", u, "text/html; charset=utf-8", "<b>hi</b>"); r.status != http.StatusCreated {
			t.Errorf("text/html: status %d, want 201", r.status)
		}
	})

	t.Run("html when only plain negotiated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{PlainOnly: true})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		r := b.c.do("POST", cv.sendMessage+"?operationId=op-1", "text/html", "<b>hi</b>")
		wantError(t, r, http.StatusUnsupportedMediaType, "")
		hasViolation(t, b.s, "wrong-content-type")
	})

	t.Run("bad JSON and missing fields", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		r := b.c.do("POST", b.apps, "application/json", `{"userAgent":`)
		wantError(t, r, http.StatusBadRequest, "DeserializationFailure")
		r = b.c.do("POST", b.apps, "application/json", `{"userAgent":"x","culture":"en-US"}`)
		wantError(t, r, http.StatusBadRequest, "ParameterValidationFailure")
		r = b.c.do("POST", b.a.startMessaging, "application/json", `{"to":"oncall@contoso.com"}`)
		wantError(t, r, http.StatusBadRequest, "ParameterValidationFailure")
		r = b.c.do("POST", b.a.startMessaging, "text/plain", `{"to":"sip:oncall@contoso.com"}`)
		wantError(t, r, http.StatusUnsupportedMediaType, "")
		n := 0
		for _, v := range b.s.Violations() {
			if v.Rule == "bad-body" || v.Rule == "wrong-content-type" {
				n++
			}
		}
		if n != 4 {
			t.Errorf("violations %+v, want 4 bad-body/wrong-content-type", b.s.Violations())
		}
	})

	t.Run("URL of a deleted application", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		b.l.stop()
		if r := b.c.do("DELETE", b.a.self, "", ""); r.status != http.StatusNoContent {
			t.Fatalf("DELETE = %d", r.status)
		}
		b.c.createApp(b.apps, "worker-b")
		r := b.c.send(cv, "op-1", "to the old application")
		wantError(t, r, http.StatusNotFound, "ApplicationNotFound")
		hasViolation(t, b.s, "deleted-application")
	})

	t.Run("URL from another pool", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{SharedTokens: true})
		u, _ := url.Parse(b.a.self)
		other := b.s.PoolURL("fe2-backup") + u.Path
		r := b.c.do("GET", other, "", "")
		wantError(t, r, http.StatusNotFound, "")
		hasViolation(t, b.s, "foreign-url")
	})

	t.Run("bad credentials", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, Config{})
		c := newClient(t)
		r := c.do("POST", s.PoolURL("fe1")+tokenPath, "application/x-www-form-urlencoded",
			"grant_type=password&username=alertbot@contoso.com&password=wrong")
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "invalid_grant") {
			t.Fatalf("token with bad password: %d %q", r.status, r.body)
		}
		r = c.do("POST", s.PoolURL("fe1")+tokenPath, "application/x-www-form-urlencoded", "grant_type=urn:microsoft.rtc:passive")
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "unsupported_grant_type") {
			t.Fatalf("token with passive grant: %d %q", r.status, r.body)
		}
		hasViolation(t, s, "invalid-grant")
	})

	t.Run("huge body", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		cv := b.c.startConversation(b.a, b.loop(), "sip:oncall@contoso.com")
		r := b.c.send(cv, "op-big", strings.Repeat("x", 3<<20))
		if r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("3 MiB message: status %d, want 413", r.status)
		}
		if r := b.c.send(cv, "op-ok", "still alive"); r.status != http.StatusCreated {
			t.Fatalf("after huge body: status %d", r.status)
		}
	})
}

// waitHeld waits until some application holds a P-GET.
func waitHeld(t *testing.T, s *Sim) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		for _, a := range s.liveApps() {
			a.mu.Lock()
			held := a.ev.waiter != nil
			a.mu.Unlock()
			if held {
				return
			}
		}
		sleepBrief()
	}
	t.Fatal("no P-GET was held")
}

// TestNoSecretsLeak checks that neither the password nor any token reaches
// the log, the violations or the request log.
func TestNoSecretsLeak(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startSim(t, Config{Logger: logger, Password: "hunter2-very-secret", EmbedResources: true})
	c := newClient(t)
	apps := c.signIn(s.DiscoveryURLs()[0], "hunter2-very-secret")
	a := c.createApp(apps, "worker-z")
	l := c.startLoop(a.events)
	cv := c.startConversation(a, l, "sip:oncall@contoso.com")
	c.send(cv, "op-1", "hello")
	c.send(cv, strings.Repeat("y", 60), "hello") // a violation
	c.do("GET", apps+"/built", "", "")           // another
	token := c.getTok()
	l.stop()

	mu.Lock()
	logged := buf.String()
	mu.Unlock()
	var rest bytes.Buffer
	for _, v := range s.Violations() {
		rest.WriteString(v.Path + v.Detail + v.Method)
	}
	for _, e := range s.RequestLog() {
		rest.WriteString(e.Path)
	}
	for _, secret := range []string{"hunter2-very-secret", token, strings.TrimPrefix(token, "cwt=")} {
		if strings.Contains(logged, secret) || strings.Contains(rest.String(), secret) {
			t.Errorf("secret %q leaked", secret[:4]+"...")
		}
	}
	if !strings.Contains(logged, "operation_id") {
		t.Errorf("log has no accepted-message line: %q", logged)
	}
}

func sleepBrief() { time.Sleep(time.Millisecond) }

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestOriginHeaderRejected(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	req, _ := http.NewRequest("GET", b.a.self, nil)
	req.Header.Set("Authorization", "Bearer "+b.c.getTok())
	req.Header.Set("Origin", "https://intranet.contoso.com")
	res, err := b.c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("request with Origin = %d, want 403", res.StatusCode)
	}
	hasViolation(t, b.s, "origin-header")
}
