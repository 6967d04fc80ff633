package ucwasim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests talk to the simulator with plain net/http, the way PROTOCOL §11
// describes, not through the relay's UCWA client.

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d response %q: %v", r.status, r.body, err)
	}
}

type links map[string]struct {
	Href string `json:"href"`
}

// client is a hand-written UCWA client for tests.
type client struct {
	t             testing.TB
	hc            *http.Client
	mu            sync.Mutex // guards token: the event loop reads it concurrently
	token         string
	ucwa          string // base of the applications link: relative hrefs resolve against it
	lastTokenHref string
}

func newClient(t testing.TB) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// resolve turns an href into an absolute URL against base.
func resolve(t testing.TB, base, href string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse base %q: %v", base, err)
	}
	h, err := url.Parse(href)
	if err != nil {
		t.Fatalf("parse href %q: %v", href, err)
	}
	return b.ResolveReference(h).String()
}

func (c *client) abs(href string) string { return resolve(c.t, c.ucwa, href) }

func (c *client) getTok() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

func (c *client) setTok(v string) {
	c.mu.Lock()
	c.token = v
	c.mu.Unlock()
}

// doAnon sends a request without Authorization.
func (c *client) doAnon(method, u, contentType, body string) resp {
	c.t.Helper()
	r, err := c.send0(context.Background(), method, u, contentType, body, false)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

func (c *client) do(method, u, contentType string, body string) resp {
	c.t.Helper()
	r, err := c.doErr(context.Background(), method, u, contentType, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

func (c *client) doErr(ctx context.Context, method, u, contentType string, body string) (resp, error) {
	return c.send0(ctx, method, u, contentType, body, true)
}

func (c *client) send0(ctx context.Context, method, u, contentType string, body string, auth bool) (resp, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return resp{}, err
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok := c.getTok(); auth && tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return resp{}, err
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}, nil
}

var oauthHref = regexp.MustCompile(`MsRtcOAuth href="?([^",]+)"?`)

// tokenHref reads the MsRtcOAuth href of a 401 challenge.
func tokenHref(t testing.TB, r resp) string {
	t.Helper()
	if r.status != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401 challenge; body %q", r.status, r.body)
	}
	for _, v := range r.header.Values("WWW-Authenticate") {
		if m := oauthHref.FindStringSubmatch(v); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no MsRtcOAuth challenge in %q", r.header.Values("WWW-Authenticate"))
	return ""
}

// signIn runs discovery and authentication (§11 steps 1-4) from root and
// returns the applications URL.
func (c *client) signIn(root, password string) string {
	t := c.t
	t.Helper()
	var rootBody struct {
		Links links `json:"_links"`
	}
	c.do("GET", root, "", "").json(t, &rootBody)
	userURL := resolve(t, root, rootBody.Links["user"].Href)
	for hop := 0; hop < 3; hop++ {
		r := c.doAnon("GET", userURL, "", "")
		href := tokenHref(t, r)
		if c.getTok() == "" || !sameHost(href, c.lastTokenHref) {
			c.getToken(href, password)
		}
		var user struct {
			Links links `json:"_links"`
		}
		r = c.do("GET", userURL, "", "")
		if r.status == http.StatusUnauthorized {
			c.getToken(tokenHref(t, r), password)
			r = c.do("GET", userURL, "", "")
		}
		r.json(t, &user)
		if red, ok := user.Links["redirect"]; ok {
			userURL = resolve(t, userURL, red.Href)
			continue
		}
		apps := resolve(t, userURL, user.Links["applications"].Href)
		c.ucwa = apps
		return apps
	}
	t.Fatal("too many user redirects")
	return ""
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Host == ub.Host
}

func (c *client) getToken(href, password string) {
	t := c.t
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {"alertbot@contoso.com"}, "password": {password}}
	r := c.doAnon("POST", href, "application/x-www-form-urlencoded", form.Encode())
	if r.status != http.StatusOK {
		t.Fatalf("token: status %d body %q", r.status, r.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	r.json(t, &tok)
	if !strings.HasPrefix(tok.AccessToken, "cwt=") || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		t.Fatalf("token response %+v", tok)
	}
	c.setTok(tok.AccessToken)
	c.lastTokenHref = href
}

// app is a created application as the client sees it.
type app struct {
	self, events, startMessaging, me, makeMeAvailable string
}

func (c *client) createApp(appsURL, endpointID string) app {
	t := c.t
	t.Helper()
	body := `{"userAgent":"relay-test/1.0","endpointId":"` + endpointID + `","culture":"en-US"}`
	r := c.do("POST", appsURL, "application/json", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create application: status %d body %q", r.status, r.body)
	}
	var a struct {
		Links    links `json:"_links"`
		Embedded struct {
			Me struct {
				Links links `json:"_links"`
			} `json:"me"`
			Communication struct {
				Links links `json:"_links"`
			} `json:"communication"`
		} `json:"_embedded"`
	}
	r.json(t, &a)
	return app{
		self:            c.abs(a.Links["self"].Href),
		events:          c.abs(a.Links["events"].Href),
		startMessaging:  c.abs(a.Embedded.Communication.Links["startMessaging"].Href),
		me:              c.abs(a.Embedded.Me.Links["self"].Href),
		makeMeAvailable: c.abs(a.Embedded.Me.Links["makeMeAvailable"].Href),
	}
}

// ev is one received event with its sender.
type ev struct {
	Sender   string
	Link     struct{ Rel, Href string }
	In       *struct{ Rel, Href string }
	Type     string
	Status   string
	Reason   *struct{ Code, Subcode string }
	Embedded map[string]json.RawMessage `json:"_embedded"`
}

type eventsBody struct {
	Links  links `json:"_links"`
	Sender []struct {
		Rel    string `json:"rel"`
		Href   string `json:"href"`
		Events []ev   `json:"events"`
	} `json:"sender"`
}

// pget runs one P-GET and returns the parsed body.
func (c *client) pget(u string) (resp, eventsBody) {
	c.t.Helper()
	r := c.do("GET", u, "", "")
	var b eventsBody
	if r.status == http.StatusOK {
		r.json(c.t, &b)
	}
	return r, b
}

// loop keeps one P-GET outstanding and forwards events, in order.
type loop struct {
	c      *client
	events chan ev
	errs   chan resp
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *client) startLoop(first string) *loop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loop{c: c, events: make(chan ev, 10000), errs: make(chan resp, 16), cancel: cancel}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		next := first
		for ctx.Err() == nil {
			u, _ := url.Parse(next)
			q := u.Query()
			q.Set("timeout", "180")
			u.RawQuery = q.Encode()
			r, err := c.doErr(ctx, "GET", u.String(), "", "")
			if err != nil {
				return
			}
			if r.status != http.StatusOK {
				l.errs <- r
				return
			}
			var b eventsBody
			if err := json.Unmarshal(r.body, &b); err != nil {
				l.errs <- r
				return
			}
			for _, s := range b.Sender {
				for _, e := range s.Events {
					e.Sender = s.Rel
					l.events <- e
				}
			}
			switch {
			case b.Links["next"].Href != "":
				next = c.abs(b.Links["next"].Href)
			case b.Links["resume"].Href != "":
				next = c.abs(b.Links["resume"].Href)
			case b.Links["resync"].Href != "":
				next = c.abs(b.Links["resync"].Href)
			default:
				l.errs <- r
				return
			}
		}
	}()
	c.t.Cleanup(l.stop)
	return l
}

func (l *loop) stop() {
	l.cancel()
	l.wg.Wait()
}

// waitFor returns the first event matching ok, failing after 10 s.
func (l *loop) waitFor(ok func(ev) bool) ev {
	l.c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-l.events:
			if ok(e) {
				return e
			}
		case r := <-l.errs:
			l.c.t.Fatalf("event loop ended: status %d body %q", r.status, r.body)
		case <-deadline:
			l.c.t.Fatal("timed out waiting for event")
		}
	}
}

// conv is a started conversation as the client sees it.
type conv struct {
	invitation, messaging, sendMessage string
}

// startConversation posts startMessaging and waits for Connected.
func (c *client) startConversation(a app, l *loop, to string) conv {
	t := c.t
	t.Helper()
	r := c.do("POST", a.startMessaging, "application/json", `{"to":"`+to+`","operationId":"inv-1","subject":"test"}`)
	if r.status != http.StatusCreated || r.header.Get("Location") == "" {
		t.Fatalf("startMessaging: status %d location %q body %q", r.status, r.header.Get("Location"), r.body)
	}
	cv := conv{invitation: c.abs(r.header.Get("Location"))}
	e := l.waitFor(func(e ev) bool {
		return e.Link.Rel == "messaging" && e.Type == "updated" && strings.Contains(string(e.Embedded["messaging"]), `"Connected"`)
	})
	cv.messaging = c.abs(e.Link.Href)
	var m struct {
		Links links `json:"_links"`
	}
	if err := json.Unmarshal(e.Embedded["messaging"], &m); err != nil {
		t.Fatal(err)
	}
	cv.sendMessage = c.abs(m.Links["sendMessage"].Href)
	done := l.waitFor(func(e ev) bool { return e.Link.Rel == "messagingInvitation" && e.Type == "completed" })
	if done.Status != "Success" {
		t.Fatalf("invitation completed %q", done.Status)
	}
	return cv
}

// send posts one message and returns the response.
func (c *client) send(cv conv, opID, text string) resp {
	c.t.Helper()
	u, _ := url.Parse(cv.sendMessage)
	q := u.Query()
	q.Set("operationId", opID)
	u.RawQuery = q.Encode()
	return c.do("POST", u.String(), "text/plain; charset=utf-8", text)
}

func noViolations(t testing.TB, s *Sim) {
	t.Helper()
	if v := s.Violations(); len(v) != 0 {
		t.Fatalf("Violations() = %+v, want none", v)
	}
}

// hasViolation checks that rule was recorded.
func hasViolation(t testing.TB, s *Sim, rule string) {
	t.Helper()
	for _, v := range s.Violations() {
		if v.Rule == rule {
			return
		}
	}
	t.Fatalf("no %q violation in %+v", rule, s.Violations())
}

func startSim(t testing.TB, cfg Config) *Sim {
	t.Helper()
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 0.01
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// waitConnected polls the invitation until it is Connected, so that every
// event of the start is queued.
func waitConnected(t testing.TB, c *client, invitation string) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		var inv struct{ State string }
		c.do("GET", invitation, "", "").json(t, &inv)
		if inv.State == "Connected" {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("invitation never Connected")
}
