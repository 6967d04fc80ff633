package ui_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/render"
	"github.com/skype-relay/relay/relay/store"
	"github.com/skype-relay/relay/relay/ui"
	"github.com/skype-relay/relay/relay/web"
)

const (
	apiToken = "api-token-ui-3c1e"
	password = "correct horse battery"
)

type testBundle struct {
	dbURL   string
	srv     *httptest.Server
	db      *store.DB
	console *ui.Console
	users   *web.Users
	logs    *relaytest.Buffer
}

// setup serves the console and the API of a relay on a fresh database,
// with a users file holding "anna", and settings changed by mutate.
func setup(t testing.TB, mutate func(*ui.Settings)) testBundle {
	t.Helper()
	dbURL := relaytest.NewDatabase(t)
	// Generous: a loaded machine must not turn a test's webhook into a 503.
	db, err := store.Open(context.Background(), dbURL, store.Options{OpTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(t.TempDir(), "users.yml")
	if err := os.WriteFile(usersFile, []byte("basic_auth_users:\n  anna: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := web.LoadUsers(usersFile)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := render.New(render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	convs := map[string][]relay.Target{"oncall": {{To: "sip:oncall@contoso.com"}}, "dba": {{To: "sip:dba@contoso.com"}}}
	cfg := &ingest.Config{
		Routes: map[string]*ingest.Route{
			"prod": {Name: "prod", Format: "alertmanager", Template: "alertmanager", Defaults: []string{"oncall", "dba"}, Conversations: convs},
		},
		APIToken: apiToken, DedupWindow: 15 * time.Minute, Engine: engine, Conversations: convs, RedeliverWindow: time.Minute,
	}
	logs := &relaytest.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay's log:\n%s", logs)
		}
	})
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	settings := &ui.Settings{Users: users}
	if mutate != nil {
		mutate(settings)
	}
	var h *ingest.Handler
	console, err := ui.New(ui.Options{DB: db, Logger: logger, IngestConfig: func() *ingest.Config { return h.Config() }}, settings)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h = ingest.New(cfg, ingest.Options{DB: db, Logger: logger, Registerer: reg, Gatherer: reg, Console: console,
		RequestTimeout: 45 * time.Second})
	h.Open()
	srv := httptest.NewServer(h.Echo())
	t.Cleanup(srv.Close)
	return testBundle{dbURL: dbURL, srv: srv, db: db, console: console, users: users, logs: logs}
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	t      testing.TB
	b      testBundle
	client *http.Client
}

func (b testBundle) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, b: b, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (br *browser) do(req *http.Request) page {
	br.t.Helper()
	resp, err := br.client.Do(req)
	if err != nil {
		br.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), header: resp.Header}
}

func (br *browser) get(path string) page {
	br.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, br.b.srv.URL+path, nil)
	return br.do(req)
}

// post sends a form the way a browser of the same origin does.
func (br *browser) post(path string, form url.Values) page {
	br.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, br.b.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", br.b.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return br.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the first form of a page.
func csrf(t testing.TB, p page) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", p.body)
	}
	return m[1]
}

// signIn signs br in as anna.
func (br *browser) signIn() {
	br.t.Helper()
	form := br.get("/ui/signin")
	p := br.post("/ui/signin", url.Values{"csrf": {csrf(br.t, form)}, "username": {"anna"}, "password": {password}})
	if p.status != http.StatusSeeOther || p.location != "/ui/" {
		br.t.Fatalf("sign-in = %d to %q, want 303 to /ui/:\n%s", p.status, p.location, p.body)
	}
}

// webhook posts an Alertmanager body to route prod and returns the
// operationIds.
func (b testBundle) webhook(t *testing.T, body []byte) []string {
	t.Helper()
	resp, err := http.Post(b.srv.URL+"/v1/webhooks/prod", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", resp.StatusCode, raw)
	}
	ids := regexp.MustCompile(`"(\w{26}-\d+)"`).FindAllStringSubmatch(string(raw), -1)
	var out []string
	for _, m := range ids {
		out = append(out, m[1])
	}
	return out
}

func (b testBundle) setState(t *testing.T, id string, st relay.State) {
	t.Helper()
	if _, err := b.db.Pool().Exec(context.Background(), `UPDATE deliveries SET state = $2, last_error = 'declined' WHERE operation_id = $1`,
		id, string(st)); err != nil {
		t.Fatal(err)
	}
}

func trusted(prefixes ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range prefixes {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}
