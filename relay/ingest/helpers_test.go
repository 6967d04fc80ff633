package ingest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/ingest"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/render"
	"github.com/skype-relay/relay/relay/store"
)

const (
	apiToken   = "api-token-6d1f"
	routeToken = "route-token-93ab"
)

type testBundle struct {
	srv *httptest.Server
	db  *store.DB
	// check reads what was stored, straight from the database (not through
	// the proxy) and with a long timeout: a test's own reads must not fail
	// because a loaded machine is slow.
	check   *store.DB
	proxy   *relaytest.Proxy
	handler *ingest.Handler
	reg     *prometheus.Registry
	logs    *relaytest.Buffer
}

// brokenTemplate fails at execution for the "dba" conversation only, so a
// route to oncall and dba renders one message and then fails.
const brokenTemplate = `{{ if eq .Conversation "dba" }}{{ index .Alerts 99 }}{{ end }}alert {{ .Status }}`

func setup(t testing.TB, mutate func(*ingest.Config)) testBundle {
	t.Helper()
	return setupWith(t, bundleOptions{}, mutate)
}

// bundleOptions tunes setupWith; zero values keep setup's.
type bundleOptions struct {
	// The timeouts are generous by default: a test that is not about them
	// must not get a 503 because a loaded machine (CI runs the race
	// detector, the browser test and the failover test beside this
	// package) took a few seconds over a commit.
	store          store.Options // OpTimeout 30s by default
	requestTimeout time.Duration // 45s by default
	// readTimeout is the server's (none by default).
	readTimeout time.Duration
	// lifecycle, reload and listenerAuth are the Options of the same names.
	lifecycle    bool
	reload       func(context.Context) error
	listenerAuth func(*http.Request) bool
}

func setupWith(t testing.TB, o bundleOptions, mutate func(*ingest.Config)) testBundle {
	t.Helper()
	if o.store.OpTimeout == 0 {
		o.store.OpTimeout = 30 * time.Second
	}
	if o.requestTimeout == 0 {
		o.requestTimeout = 45 * time.Second
	}
	url := relaytest.NewDatabase(t)
	proxy, proxied := relaytest.NewProxy(t, url)
	db, err := store.Open(context.Background(), proxied, o.store)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(db.Close)
	check, err := store.Open(context.Background(), url, store.Options{OpTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(check.Close)

	tmpl := filepath.Join(t.TempDir(), "broken.tmpl")
	if err := os.WriteFile(tmpl, []byte(brokenTemplate), 0o600); err != nil {
		t.Fatal(err)
	}
	engine, err := render.New(render.Options{Files: map[string]string{"broken": tmpl}})
	if err != nil {
		t.Fatalf("render.New: %v", err)
	}
	convs := map[string][]relay.Target{
		"oncall": {{To: "sip:oncall@contoso.com"}},
		"dba":    {{To: "sip:dba@contoso.com"}},
	}
	cfg := &ingest.Config{
		Routes: map[string]*ingest.Route{
			"prod":    {Name: "prod", Format: "alertmanager", Template: "alertmanager", Defaults: []string{"oncall", "dba"}, Conversations: convs},
			"secured": {Name: "secured", Format: "alertmanager", Template: "alertmanager", Token: routeToken, Defaults: []string{"oncall"}, Conversations: convs},
			"broken":  {Name: "broken", Format: "alertmanager", Template: "broken", Defaults: []string{"oncall", "dba"}, Conversations: convs},
		},
		APIToken:     apiToken,
		MaxBodyBytes: 64 << 10,
		DedupWindow:  15 * time.Minute,
		Engine:       engine,
	}
	if mutate != nil {
		mutate(cfg)
	}
	logs := &relaytest.Buffer{}
	t.Cleanup(func() {
		// A failure's cause (a timeout, a refused statement) is in the
		// handler's log, not in the answer a client sees.
		if t.Failed() {
			t.Logf("relay's log:\n%s", logs)
		}
	})
	reg := prometheus.NewRegistry()
	h := ingest.New(cfg, ingest.Options{
		DB: db, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registerer: reg, Gatherer: reg,
		RequestTimeout: o.requestTimeout, EnableLifecycle: o.lifecycle, Reload: o.reload, ListenerAuth: o.listenerAuth,
	})
	h.Open()
	srv := httptest.NewUnstartedServer(h.Echo())
	srv.Config.ReadTimeout = o.readTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return testBundle{srv: srv, db: db, check: check, proxy: proxy, handler: h, reg: reg, logs: logs}
}

type response struct {
	status int
	body   map[string]any
	header http.Header
}

func (b testBundle) do(t *testing.T, method, path, contentType, token string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
		}
	}
	return out
}

func (b testBundle) post(t *testing.T, route string, body []byte) response {
	t.Helper()
	return b.do(t, http.MethodPost, "/v1/webhooks/"+route, "application/json", "", body)
}

func (b testBundle) deliveryCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.db.Pool().QueryRow(context.Background(), "SELECT count(*) FROM deliveries").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// metric returns the value of the counter name whose labels include want,
// 0 when there is none.
func (b testBundle) metric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// basicHeader is an Authorization header with basic auth credentials.
func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// readAll reads and closes resp's body.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
