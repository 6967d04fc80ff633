package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/ui"
)

func TestSignInAndOut(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	br := b.browser(t)
	if p := br.get("/ui/deliveries?state=dead"); p.status != http.StatusSeeOther || p.location != "/ui/signin?next=%2Fui%2Fdeliveries%3Fstate%3Ddead" {
		t.Fatalf("signed out: GET = %d to %q, want the sign-in page", p.status, p.location)
	}
	form := br.get("/ui/signin")
	if !strings.Contains(form.body, `<label for="password">Password</label>`) {
		t.Fatalf("sign-in page lacks its form:\n%s", form.body)
	}
	p := br.post("/ui/signin", url.Values{"csrf": {csrf(t, form)}, "username": {"anna"}, "password": {"wrong"}})
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong user name or password.") {
		t.Errorf("wrong password = %d, want 401 saying so", p.status)
	}
	p = br.post("/ui/signin", url.Values{"csrf": {csrf(t, p)}, "username": {"anna"}, "password": {password},
		"next": {"/ui/deliveries?state=dead"}})
	if p.status != http.StatusSeeOther || p.location != "/ui/deliveries?state=dead" {
		t.Fatalf("sign-in = %d to %q", p.status, p.location)
	}
	var cookie string
	for _, c := range strings.Split(strings.Join(p.header.Values("Set-Cookie"), "\n"), "\n") {
		if strings.HasPrefix(c, "relay_console=") {
			cookie = c
		}
	}
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/ui/", "Max-Age=43200"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("session cookie %q is Secure over plain HTTP", cookie)
	}
	home := br.get("/ui/")
	if home.status != http.StatusOK || !strings.Contains(home.body, "Signed in as <strong>anna</strong>") {
		t.Fatalf("overview = %d:\n%s", home.status, home.body)
	}
	if csp := home.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	out := br.post("/ui/signout", url.Values{"csrf": {csrf(t, home)}})
	if out.status != http.StatusOK || !strings.Contains(out.body, "Signed out") {
		t.Fatalf("sign-out = %d:\n%s", out.status, out.body)
	}
	if p := br.get("/ui/"); p.status != http.StatusSeeOther {
		t.Errorf("after sign-out: GET /ui/ = %d, want a redirect to sign in", p.status)
	}
	// An open redirect is not offered.
	form = br.get("/ui/signin")
	p = br.post("/ui/signin", url.Values{"csrf": {csrf(t, form)}, "username": {"anna"}, "password": {password}, "next": {"//evil.example/"}})
	if p.location != "/ui/" {
		t.Errorf("next=//evil.example/ led to %q, want /ui/", p.location)
	}
}

// TestPostsNeedTheSession: a POST without the CSRF token, from another
// origin, or with a session that was signed out is refused, and nothing
// is redelivered.
func TestPostsNeedTheSession(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.webhook(t, relaytest.Notification("g1", 1, "firing"))[0]
	b.setState(t, id, relay.StateDead)
	br := b.browser(t)
	br.signIn()
	detail := br.get("/ui/deliveries/" + id + "/redeliver")
	token := csrf(t, detail)
	key := strings.Split(strings.Split(detail.body, `name="key" value="`)[1], `"`)[0]
	path := "/ui/deliveries/" + id + "/redeliver"

	if p := br.post(path, url.Values{"key": {key}}); p.status != http.StatusForbidden {
		t.Errorf("without the token: %d, want 403", p.status)
	}
	if p := br.post(path, url.Values{"key": {key}, "csrf": {token + "x"}}); p.status != http.StatusForbidden {
		t.Errorf("with a wrong token: %d, want 403", p.status)
	}
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(url.Values{"key": {key}, "csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := br.do(req); p.status != http.StatusForbidden || !strings.Contains(p.body, "another site") {
		t.Errorf("from another origin: %d, want 403", p.status)
	}
	// Sign out, then replay the old cookie and token.
	jar := br.client.Jar
	u := mustURL(b.srv.URL + "/ui/")
	old := jar.Cookies(u)
	br.post("/ui/signout", url.Values{"csrf": {token}})
	jar.SetCookies(u, old)
	if p := br.post(path, url.Values{"key": {key}, "csrf": {token}}); p.status != http.StatusForbidden {
		t.Errorf("after sign-out: %d, want 403", p.status)
	}
	d, err := b.db.GetDelivery(t.Context(), id)
	if err != nil || d.State != relay.StateDead || len(d.Redeliveries) != 0 {
		t.Fatalf("after refused POSTs: %v %v, %d redeliveries; want still dead", d.State, err, len(d.Redeliveries))
	}
	// The API token needs no CSRF token: a script is not a browser.
	req, _ = http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(url.Values{"key": {"script-1"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if p := br.do(req); p.status != http.StatusSeeOther {
		t.Errorf("with the API token: %d, want 303:\n%s", p.status, p.body)
	}
	req, _ = http.NewRequest(http.MethodGet, b.srv.URL+"/ui/", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	if p := br.do(req); p.status != http.StatusUnauthorized {
		t.Errorf("a wrong bearer token: %d, want 401", p.status)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestProxySignIn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trusted string
		want    int
	}{
		{"from the proxy", "127.0.0.0/8", http.StatusOK},
		{"from elsewhere", "10.0.0.0/8", http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(s *ui.Settings) {
				s.Users = nil
				s.ProxyHeader = "X-Forwarded-User"
				s.ProxyTrusted = trusted(tc.trusted)
			})
			br := b.browser(t)
			req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/ui/", nil)
			req.Header.Set("X-Forwarded-User", "carla@example.com")
			p := br.do(req)
			if p.status != tc.want {
				t.Fatalf("GET /ui/ with the header = %d, want %d", p.status, tc.want)
			}
			if tc.want == http.StatusOK && !strings.Contains(p.body, "Signed in as <strong>carla@example.com</strong>") {
				t.Errorf("overview does not name the proxy's user")
			}
		})
	}
}

func TestSignInNotConfigured(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *ui.Settings) { s.Users = nil })
	br := b.browser(t)
	p := br.get("/ui/signin")
	if p.status != http.StatusOK || !strings.Contains(p.body, "Sign-in is not enabled") || !strings.Contains(p.body, "console.users_file") ||
		strings.Contains(p.body, `type="password"`) {
		t.Errorf("sign-in page without sign-in configured = %d:\n%s", p.status, p.body)
	}
}
