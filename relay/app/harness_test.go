package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/app/apptest"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

// relayInstance is one relay running in-process against a real database
// and the UCWA simulator.
type relayInstance struct {
	t    testing.TB
	base string
	// stop shuts the relay down gracefully and waits for it (again: at
	// once).
	stop func()
	logs *relaytest.Buffer
}

const simPassword = "sim-password-7c1e"

// deliveryYAML configures two routes over three conversations, the UCWA
// client against sim with protocol timers shrunk for tests, and fast
// delivery retries. extra is appended (more top-level keys).
func deliveryYAML(sim *ucwasim.Sim, extra string) string {
	return relaytest.UCWAYAML(sim.DiscoveryURLs()) + fmt.Sprintf(`
conversations:
  oncall: { to: "sip:oncall@contoso.com", subject: "Production alerts" }
  dba:    { to: "sip:dba@contoso.com" }
  nobody: { to: "sip:nobody@contoso.com" }
routes:
  - name: prod
    format: alertmanager
    conversations: [oncall, dba]
  - name: oncall-only
    format: alertmanager
    conversations: [oncall]
  - name: ghost
    format: alertmanager
    conversations: [nobody]
    delivery: { max_attempts: 2 }
`+fastDelivery+`%s`, extra)
}

// fastDelivery is the worker tuning of the tests: quick polls and retries.
// The session lease keeps its default length: no test here hands it over,
// and a short one is renewed so often that a slow moment of a loaded
// machine loses it (and cancels the sends in flight).
const fastDelivery = `delivery:
  poll_interval: 50ms
  retry_base: 20ms
  retry_max: 200ms
  session_ttl: 6s
  lease: 30s
`

func newSim(t testing.TB) *ucwasim.Sim {
	t.Helper()
	sim, err := ucwasim.New(ucwasim.Config{Password: simPassword, TimeScale: 0.01, EmbedResources: true})
	if err != nil {
		t.Fatalf("ucwasim.New: %v", err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func startRelay(t testing.TB, dbURL, yaml string) *relayInstance {
	t.Helper()
	env := map[string]string{"DATABASE_URL": dbURL, "RELAY_API_TOKEN": "api-token", "RELAY_UCWA_PASSWORD": simPassword}
	r := &relayInstance{t: t, logs: &relaytest.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.base, r.stop = apptest.Run(t, yaml, env, logger, app.Options{})
	return r
}

func (r *relayInstance) post(route string, body []byte) []string {
	r.t.Helper()
	status, raw := relaytest.PostWebhook(r.t, r.base+"/v1/webhooks/"+route, body)
	var out struct {
		OperationIDs []string `json:"operationIds"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || status/100 != 2 {
		r.t.Fatalf("POST %s = %d %s (%v)", route, status, raw, err)
	}
	return out.OperationIDs
}

type deliveryView struct {
	OperationID string `json:"operationId"`
	State       string `json:"state"`
	Text        string `json:"text"`
	Recipient   string `json:"recipient"`
	LastError   string `json:"lastError"`
	Unconfirmed int    `json:"unconfirmed"`
	AttemptLog  []struct {
		Attempt         int    `json:"attempt"`
		Outcome         string `json:"outcome"`
		Pool            string `json:"pool"`
		UCWAOperationID string `json:"ucwaOperationId"`
		Reason          string `json:"reason"`
		CarriedBy       string `json:"carriedBy"`
		Carried         int    `json:"carried"`
	} `json:"attemptLog"`
}

func (r *relayInstance) api(method, path string) (int, []byte) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.base+path, nil)
	req.Header.Set("Authorization", "Bearer api-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (r *relayInstance) delivery(id string) deliveryView {
	r.t.Helper()
	status, body := r.api(http.MethodGet, "/v1/deliveries/"+id)
	if status != http.StatusOK {
		r.t.Fatalf("GET delivery %s = %d %s", id, status, body)
	}
	var d deliveryView
	if err := json.Unmarshal(body, &d); err != nil {
		r.t.Fatal(err)
	}
	return d
}

// waitState polls until every id reaches a final state and returns them.
func (r *relayInstance) waitFinal(timeout time.Duration, ids ...string) map[string]deliveryView {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := map[string]deliveryView{}
		for _, id := range ids {
			d := r.delivery(id)
			if d.State == "pending" || d.State == "sending" {
				break
			}
			out[id] = d
		}
		if len(out) == len(ids) {
			return out
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("deliveries not final after %s: have %d of %d final", timeout, len(out), len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func assertNoViolations(t testing.TB, sim *ucwasim.Sim) {
	t.Helper()
	for _, v := range sim.Violations() {
		t.Errorf("UCWA protocol violation: %s %s: %s (%s)", v.Method, v.Path, v.Rule, v.Detail)
	}
}
