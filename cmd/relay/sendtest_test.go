package main

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/app/apptest"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

const simPassword = "sim-password-0c4d"

// startSendingRelay runs the relay in-process against a fresh database and
// the UCWA simulator, with the audit API on, and returns its base URL.
func startSendingRelay(t *testing.T, sim *ucwasim.Sim) string {
	t.Helper()
	env := map[string]string{"DATABASE_URL": relaytest.NewDatabase(t), "RELAY_API_TOKEN": cliAPIToken,
		"RELAY_UCWA_PASSWORD": simPassword}
	yaml := relaytest.UCWAYAML(sim.DiscoveryURLs()) + `
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
  pair:   { to: ["sip:anna@contoso.com", "sip:ben@contoso.com"] }
  nobody: { to: "sip:nobody@contoso.com" }
  slow:   { to: "sip:slow@contoso.com" }
routes:
  - { name: prod, format: alertmanager, conversations: [oncall] }
delivery:
  poll_interval: 50ms
  retry_base: 20ms
  retry_max: 200ms
  session_ttl: 6s
  lease: 30s
`
	return apptest.Start(t, yaml, env, nil, app.Options{})
}

// TestSendTest sends test messages through a relay and the UCWA simulator:
// delivered, declined by the recipient, and to a conversation the relay
// does not know. It sets the environment, so it does not run in parallel.
func TestSendTest(t *testing.T) {
	sim, err := ucwasim.New(ucwasim.Config{Password: simPassword, TimeScale: 0.01, EmbedResources: true})
	if err != nil {
		t.Fatalf("ucwasim.New: %v", err)
	}
	t.Cleanup(sim.Close)
	base := startSendingRelay(t, sim)
	isolateEnv(t, cliAPIToken)
	sendTest := func(t *testing.T, want int, args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		args = append([]string{"send-test", "--url", base}, args...)
		if code := run(args, &out, &errOut); code != want {
			t.Fatalf("relay %v = exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, out.String(), errOut.String())
		}
		return out.String(), errOut.String()
	}

	t.Run("delivered", func(t *testing.T) {
		out, errOut := sendTest(t, 0, "--conversation", "pair", "--text", "checking the pipes")
		for _, to := range []string{"sip:anna@contoso.com", "sip:ben@contoso.com"} {
			want := regexp.MustCompile(`\n\S+-\d to ` + regexp.QuoteMeta(to) + ` \(conversation pair\): delivered, \S+ after it was queued\n` +
				`ATTEMPT +OUTCOME .*\n1 +delivered +\S+ +127\.0\.0\.1:\d+ `)
			if !want.MatchString(out) {
				t.Errorf("stdout does not match %s:\n%s", want, out)
			}
		}
		if !strings.Contains(errOut, "delivered after 1 attempt\n") {
			t.Errorf("stderr shows no progress:\n%s", errOut)
		}
		got := map[string]string{}
		for _, m := range sim.Messages() {
			got[m.Recipient] = m.Body
		}
		for _, to := range []string{"sip:anna@contoso.com", "sip:ben@contoso.com"} {
			if !strings.Contains(got[to], "checking the pipes") {
				t.Errorf("the simulator got %q for %s, want the test text", got[to], to)
			}
		}
	})

	t.Run("declined", func(t *testing.T) {
		sim.SetRecipient("sip:nobody@contoso.com", ucwasim.Behavior{Kind: ucwasim.Decline})
		out, errOut := sendTest(t, 1, "--conversation", "nobody")
		if !regexp.MustCompile(`to sip:nobody@contoso\.com \(conversation nobody\): dead: .*\n`).MatchString(out) ||
			!regexp.MustCompile(`\n1 +permanent +declined `).MatchString(out) {
			t.Errorf("stdout lacks the dead delivery and its declined attempt:\n%s", out)
		}
		if !strings.Contains(errOut, "1 of 1 test deliveries not delivered") {
			t.Errorf("stderr = %q, want the count of failures", errOut)
		}
	})

	// The simulator's recipes, as the README's demo runs them with curl:
	// the messages go through the backup pool, then through the primary.
	t.Run("fail over and back", func(t *testing.T) {
		for _, step := range []struct {
			recipe string
			pool   string
		}{
			{"fail over", "fe2-backup"},
			{"fail back", "fe1"},
		} {
			for _, r := range ucwasim.ControlRecipes {
				if strings.HasPrefix(r.Name, step.recipe+":") {
					for _, call := range r.Calls {
						simControl(t, sim.ControlURL(), call)
					}
				}
			}
			out, _ := sendTest(t, 0, "--conversation", "oncall")
			host := strings.TrimPrefix(sim.PoolURL(step.pool), "http://")
			host, _, _ = strings.Cut(host, "/")
			if !regexp.MustCompile(`\n\d +delivered +ok +` + regexp.QuoteMeta(host) + ` `).MatchString(out) {
				t.Errorf("after %q, the test message was not delivered through %s (%s):\n%s", step.recipe, step.pool, host, out)
			}
		}
	})

	t.Run("still pending when the wait ends", func(t *testing.T) {
		sim.SetRecipient("sip:slow@contoso.com", ucwasim.Behavior{Kind: ucwasim.Accept, After: time.Hour})
		out, _ := sendTest(t, 1, "--conversation", "slow", "--wait", "300ms")
		if !strings.Contains(out, "relay goes on trying") || !strings.Contains(out, "relay deliveries show ") {
			t.Errorf("stdout does not say the delivery goes on and how to follow it:\n%s", out)
		}
	})

	t.Run("unknown conversation", func(t *testing.T) {
		_, errOut := sendTest(t, 1, "--conversation", "ghost")
		if !strings.Contains(errOut, `no conversation named "ghost"`) || !strings.Contains(errOut, "nobody, oncall, pair, slow") {
			t.Errorf("stderr = %q, want the relay's 404 naming the configured conversations", errOut)
		}
	})

	t.Run("usage", func(t *testing.T) {
		sendTest(t, 2)
		sendTest(t, 2, "--conversation", "oncall", "extra")
		sendTest(t, 2, "--conversation", "oncall", "--wait", "0s")
	})
	assertNoViolations(t, sim)
}

// simControl sends one control call written as in ucwasim.ControlRecipes,
// "METHOD PATH [BODY]".
func simControl(t *testing.T, base, call string) {
	t.Helper()
	method, rest, _ := strings.Cut(call, " ")
	path, body, _ := strings.Cut(rest, " ")
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", call, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s = %d, want 200", call, resp.StatusCode)
	}
}

func assertNoViolations(t *testing.T, sim *ucwasim.Sim) {
	t.Helper()
	for _, v := range sim.Violations() {
		t.Errorf("UCWA protocol violation: %s %s: %s (%s)", v.Method, v.Path, v.Rule, v.Detail)
	}
}
