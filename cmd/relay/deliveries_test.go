package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/relaytest"
)

const cliAPIToken = "cli-api-token-5d2b9e71"

// cliRelay is a relay running in-process with the audit API on, and the
// operationIds of the notifications posted to it (newest last).
type cliRelay struct {
	base  string
	addr  string
	dbURL string
	ids   []string
}

// startCLIRelay runs the relay against a fresh database, with no UCWA
// section so nothing is ever sent and every delivery stays pending, and
// posts one notification for each of groups.
func startCLIRelay(t *testing.T, groups ...string) *cliRelay {
	t.Helper()
	dbURL := relaytest.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": dbURL, "RELAY_API_TOKEN": cliAPIToken}
	cfg, err := config.Parse([]byte(`
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - { name: prod, format: alertmanager, conversations: [oncall] }
`), t.TempDir(), func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{Listener: ln})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
	})
	r := &cliRelay{base: "http://" + ln.Addr().String(), addr: ln.Addr().String(), dbURL: dbURL}
	relaytest.WaitReady(t, r.base)
	for _, g := range groups {
		status, raw := relaytest.PostWebhook(t, r.base+"/v1/webhooks/prod", relaytest.Notification(g, 1, "firing"))
		var ack struct {
			OperationIDs []string `json:"operationIds"`
		}
		err := json.Unmarshal(raw, &ack)
		if err != nil || status != http.StatusAccepted || len(ack.OperationIDs) != 1 {
			t.Fatalf("POST webhook %s = %d %s, want 202 with one operationId (err %v)", g, status, raw, err)
		}
		r.ids = append(r.ids, ack.OperationIDs[0])
	}
	return r
}

// cli runs "relay deliveries ..." as main would.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"deliveries"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// isolateEnv clears every variable the client reads, then sets the token.
func isolateEnv(t *testing.T, token string) {
	t.Helper()
	for _, k := range []string{"RELAY_URL", "RELAY_CONFIG", "RELAY_API_TOKEN_FILE", "RELAY_LISTEN_ADDRESS"} {
		t.Setenv(k, "")
	}
	t.Setenv("RELAY_API_TOKEN", token)
}

func wantCode(t *testing.T, args []string, code, want int, stdout, stderr string) {
	t.Helper()
	if code != want {
		t.Fatalf("relay deliveries %v = exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, stdout, stderr)
	}
}

// TestDeliveriesCommand drives list, show and redeliver against a real
// relay. It sets the environment, so it does not run in parallel.
func TestDeliveriesCommand(t *testing.T) {
	r := startCLIRelay(t, "HighCPU", "DiskFull", "NodeDown")
	isolateEnv(t, cliAPIToken)
	u := []string{"--url", r.base}
	do := func(t *testing.T, want int, args ...string) (string, string) {
		t.Helper()
		args = append(args, u...)
		code, out, errOut := cli(t, args...)
		wantCode(t, args, code, want, out, errOut)
		return out, errOut
	}
	listed := func(t *testing.T, out string) []string {
		t.Helper()
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			ids = append(ids, strings.Fields(line)[0])
		}
		return ids
	}
	newestFirst := []string{r.ids[2], r.ids[1], r.ids[0]}

	t.Run("list table", func(t *testing.T) {
		out, errOut := do(t, 0, "list")
		header := regexp.MustCompile(`^OPERATION ID +STATE +ATTEMPTS +ROUTE +CONVERSATION +ALERT +SUMMARY +CREATED +LAST ERROR\n`)
		if !header.MatchString(out) {
			t.Errorf("list output lacks the header:\n%s", out)
		}
		if diff := cmp.Diff(newestFirst, listed(t, out)); diff != "" {
			t.Errorf("listed ids (-want +got):\n%s", diff)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		summaryAt := strings.Index(lines[0], "SUMMARY")
		for i, line := range lines[1:] {
			alert := []string{"NodeDown", "DiskFull", "HighCPU"}[i]
			if f := strings.Fields(line); f[1] != "pending" || f[2] != "0" || f[3] != "prod" || f[4] != "oncall" || f[5] != alert {
				t.Errorf("row %q: want pending, 0 attempts, prod, oncall, %s", line, alert)
			}
			if want := "[FIRING:1] " + alert + " "; !strings.HasPrefix(string([]rune(line)[summaryAt:]), want) {
				t.Errorf("row %q: summary does not start with %q, the message's first line", line, want)
			}
		}
		if errOut != "" {
			t.Errorf("stderr = %q, want nothing (one page)", errOut)
		}
	})

	t.Run("flags before the action", func(t *testing.T) {
		for _, args := range [][]string{
			{"--url", r.base, "list", "--json"},
			{"--json", "--url", r.base, "list"},
			{"--url=" + r.base, "--json", "list"},
		} {
			code, out, errOut := cli(t, args...)
			wantCode(t, args, code, 0, out, errOut)
			if !strings.Contains(out, `"operationId": "`+r.ids[0]+`"`) {
				t.Errorf("%v: stdout lacks the JSON of %s:\n%s", args, r.ids[0], out)
			}
		}
		args := []string{"--json", "show", r.ids[1], "--url", r.base}
		code, out, errOut := cli(t, args...)
		wantCode(t, args, code, 0, out, errOut)
		if !strings.Contains(out, `"operationId": "`+r.ids[1]+`"`) {
			t.Errorf("%v: stdout lacks the JSON of %s:\n%s", args, r.ids[1], out)
		}
	})

	t.Run("list json", func(t *testing.T) {
		out, _ := do(t, 0, "list", "--json")
		var page struct {
			Deliveries []struct {
				OperationID string `json:"operationId"`
				State       string `json:"state"`
			} `json:"deliveries"`
		}
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			t.Fatalf("list --json is not JSON: %v\n%s", err, out)
		}
		var got []string
		for _, d := range page.Deliveries {
			got = append(got, d.OperationID)
		}
		if diff := cmp.Diff(newestFirst, got); diff != "" {
			t.Errorf("list --json ids (-want +got):\n%s", diff)
		}
		if !strings.Contains(out, "\n  \"deliveries\": [") {
			t.Errorf("list --json is not indented:\n%s", out)
		}
	})

	t.Run("list filters", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			want []string
		}{
			{"state pending", []string{"--state", "pending"}, newestFirst},
			{"state dead", []string{"--state", "dead"}, nil},
			{"route", []string{"--route", "prod"}, newestFirst},
			{"other route", []string{"--route", "staging"}, nil},
			{"conversation", []string{"--conversation", "oncall"}, newestFirst},
			{"since relative", []string{"--since", "1h"}, newestFirst},
			{"until relative", []string{"--until", "1h"}, nil},
			{"since RFC 3339", []string{"--since", "2000-01-01T00:00:00Z"}, newestFirst},
			{"since future", []string{"--since", "2999-01-01T00:00:00Z"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, _ := do(t, 0, append([]string{"list"}, tc.args...)...)
				if tc.want == nil {
					if strings.TrimSpace(out) != "no deliveries" {
						t.Errorf("list %v = %q, want \"no deliveries\"", tc.args, out)
					}
					return
				}
				if diff := cmp.Diff(tc.want, listed(t, out)); diff != "" {
					t.Errorf("list %v ids (-want +got):\n%s", tc.args, diff)
				}
			})
		}
	})

	t.Run("list pages", func(t *testing.T) {
		out, errOut := do(t, 0, "list", "--limit", "2")
		if diff := cmp.Diff(newestFirst[:2], listed(t, out)); diff != "" {
			t.Errorf("first page (-want +got):\n%s", diff)
		}
		m := regexp.MustCompile(`--cursor (\S+)`).FindStringSubmatch(errOut)
		if m == nil {
			t.Fatalf("stderr %q lacks the --cursor hint", errOut)
		}
		out, errOut = do(t, 0, "list", "--limit", "2", "--cursor", m[1])
		if diff := cmp.Diff(newestFirst[2:], listed(t, out)); diff != "" {
			t.Errorf("second page (-want +got):\n%s", diff)
		}
		if errOut != "" {
			t.Errorf("last page stderr = %q, want no hint", errOut)
		}
		out, errOut = do(t, 0, "list", "--limit", "1", "--all")
		if diff := cmp.Diff(newestFirst, listed(t, out)); diff != "" {
			t.Errorf("--all (-want +got):\n%s", diff)
		}
		if errOut != "" {
			t.Errorf("--all stderr = %q, want nothing", errOut)
		}
		out, _ = do(t, 0, "list", "--limit", "1", "--all", "--json")
		var page struct {
			Deliveries []json.RawMessage `json:"deliveries"`
		}
		if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Deliveries) != 3 {
			t.Errorf("list --all --json = %d deliveries (err %v), want 3:\n%s", len(page.Deliveries), err, out)
		}
	})

	t.Run("show", func(t *testing.T) {
		id := r.ids[0]
		raw, _ := do(t, 0, "show", id, "--json")
		var d struct {
			OperationID string `json:"operationId"`
			Text        string `json:"text"`
			State       string `json:"state"`
		}
		if err := json.Unmarshal([]byte(raw), &d); err != nil || d.OperationID != id || d.Text == "" {
			t.Fatalf("show --json = %+v (err %v), want operationId %s with a text:\n%s", d, err, id, raw)
		}
		out, _ := do(t, 0, "show", id)
		for _, want := range []string{
			"Operation ID:", id, "State:", "pending", "Route:", "prod", "Conversation:", "oncall",
			"Recipient:", "sip:oncall@contoso.com", "Part:", "1 of 1", "Attempts:", "Duplicates:",
			"ATTEMPT", "OUTCOME", "REASON", "POOL", "STATUS", "UCWA CODE/SUBCODE", "LATENCY", "CARRIED", "ERROR",
			"(no attempts yet)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("show output lacks %q:\n%s", want, out)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(d.Text), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.Contains(out, "    "+line) {
				t.Errorf("show output lacks the indented text line %q:\n%s", line, out)
			}
		}
		if strings.Contains(out, "Payload:") {
			t.Errorf("show without --payload printed the payload")
		}
		out, _ = do(t, 0, "show", "--payload", id)
		if !strings.Contains(out, "Payload:") || !strings.Contains(out, `"groupKey": `) {
			t.Errorf("show --payload lacks the pretty payload:\n%s", out)
		}
	})

	t.Run("show unknown", func(t *testing.T) {
		_, errOut := do(t, 1, "show", "01AAAAAAAAAAAAAAAAAAAAAAAA-1")
		if !strings.Contains(errOut, "not found") || !strings.Contains(errOut, "404") {
			t.Errorf("stderr = %q, want the server's 404 message", errOut)
		}
	})

	t.Run("redeliver queued", func(t *testing.T) {
		out, errOut := do(t, 1, "redeliver", r.ids[1])
		if out != "" {
			t.Errorf("stdout = %q, want nothing", out)
		}
		if !strings.Contains(errOut, r.ids[1]) || !strings.Contains(errOut, "already queued") || !strings.Contains(errOut, "409") {
			t.Errorf("stderr = %q, want the server's 409 message naming the id", errOut)
		}
	})

	t.Run("redeliver unknown", func(t *testing.T) {
		_, errOut := do(t, 1, "redeliver", "01AAAAAAAAAAAAAAAAAAAAAAAA-1")
		if !strings.Contains(errOut, "not found") {
			t.Errorf("stderr = %q, want the server's 404 message", errOut)
		}
	})

	t.Run("failed delivery", func(t *testing.T) {
		id := r.ids[0]
		lastErr := "UCWA 403\x1b[31m Forbidden:\nthe recipient\tdeclined; " + strings.Repeat("more detail ", 10)
		failDelivery(t, r.dbURL, id, lastErr)
		out, _ := do(t, 0, "list", "--state", "dead")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[1], id) {
			t.Fatalf("list --state dead = %q, want %s alone", out, id)
		}
		// One line, no escape character, cut to the column's width.
		// Columns align in runes; a summary cut with "…" is longer in bytes.
		cell := string([]rune(lines[1])[strings.Index(lines[0], "LAST ERROR"):])
		if want := "UCWA 403 [31m Forbidden: the recipient declined; more"; !strings.HasPrefix(cell, want) ||
			!strings.HasSuffix(cell, "…") || len([]rune(cell)) != errorWidth {
			t.Errorf("LAST ERROR cell = %q, want %d runes starting %q and ending in …", cell, errorWidth, want)
		}
		out, _ = do(t, 0, "show", id)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`State: +dead\n`),
			regexp.MustCompile(`Attempts: +2 \(retry 1, permanent 1\)\n`),
			regexp.MustCompile(`\n1 +retry +timeout +pool1\.contoso\.com +- +- +38s +[0-9-]+ [0-9:]+ +- +no answer in 38s\n`),
			regexp.MustCompile(`\n2 +permanent +declined +pool1\.contoso\.com +403 +Forbidden/DeclinedByRecipient +230ms +[0-9-]+ [0-9:]+ +- +the recipient declined\n`),
		} {
			if !want.MatchString(out) {
				t.Errorf("show output does not match %s:\n%s", want, out)
			}
		}
		if strings.ContainsRune(out, '\x1b') {
			t.Errorf("show printed an escape character:\n%q", out)
		}
	})

	t.Run("redeliver dead", func(t *testing.T) {
		dead, queued := r.ids[0], r.ids[2]
		setState(t, r.dbURL, dead, "dead")
		out, _ := do(t, 0, "list", "--state", "dead")
		if diff := cmp.Diff([]string{dead}, listed(t, out)); diff != "" {
			t.Errorf("list --state dead (-want +got):\n%s", diff)
		}
		// One good id and one still queued: the good one is done, the
		// other reported, and the exit code says something failed.
		out, errOut := do(t, 1, "redeliver", dead, queued)
		if want := dead + ": redelivered (was dead)\n"; out != want {
			t.Errorf("stdout = %q, want %q", out, want)
		}
		if !strings.Contains(errOut, queued+": not redelivered") || !strings.Contains(errOut, "1 of 2") {
			t.Errorf("stderr = %q, want the queued id's failure and a count", errOut)
		}
		raw, _ := do(t, 0, "show", dead, "--json")
		var d struct {
			State     string `json:"state"`
			LastError string `json:"lastError"`
		}
		if err := json.Unmarshal([]byte(raw), &d); err != nil || d.State != "pending" {
			t.Errorf("after redeliver, state = %q (err %v), want pending", d.State, err)
		}
		setState(t, r.dbURL, dead, "delivered")
		out, _ = do(t, 0, "redeliver", dead, "--idempotency-key", "rerun-1")
		if want := dead + ": redelivered (was delivered)\n"; out != want {
			t.Errorf("stdout = %q, want %q", out, want)
		}
		// The same key again redelivers nothing more: the relay answers
		// with the first request's record.
		setState(t, r.dbURL, dead, "delivered")
		do(t, 0, "redeliver", dead, "--idempotency-key", "rerun-1")
		raw, _ = do(t, 0, "show", dead, "--json")
		var again struct {
			State        string `json:"state"`
			Redeliveries []struct {
				Via, RequestedBy string
			} `json:"redeliveries"`
		}
		if err := json.Unmarshal([]byte(raw), &again); err != nil || again.State != "delivered" || len(again.Redeliveries) != 2 ||
			again.Redeliveries[1].Via != "cli" || again.Redeliveries[1].RequestedBy != "api-token" {
			t.Errorf("after the same key twice: %s (err %v); want still delivered, two redeliveries by the cli", raw, err)
		}
	})

	t.Run("config gives URL and token", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "api_token"), []byte(cliAPIToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(r.addr)
		cfgFile := filepath.Join(dir, "relay.yaml")
		yaml := `listen_address: "0.0.0.0:` + port + `"
api: { bearer_token_file: api_token }
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - { name: prod, format: alertmanager, conversations: [oncall] }
`
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("RELAY_API_TOKEN", "")
		t.Setenv("RELAY_CONFIG", cfgFile)
		args := []string{"list", "--state", "pending"}
		code, out, errOut := cli(t, args...)
		wantCode(t, args, code, 0, out, errOut)
		if !strings.Contains(out, r.ids[1]) {
			t.Errorf("list via the config lacks %s:\n%s", r.ids[1], out)
		}
	})

	t.Run("token file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(file, []byte(cliAPIToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("RELAY_API_TOKEN", "")
		t.Setenv("RELAY_API_TOKEN_FILE", file)
		out, _ := do(t, 0, "list")
		if !strings.Contains(out, r.ids[1]) {
			t.Errorf("list with RELAY_API_TOKEN_FILE lacks %s:\n%s", r.ids[1], out)
		}
	})

	t.Run("wrong token", func(t *testing.T) {
		const wrong = "wrong-token-0b8f3c"
		t.Setenv("RELAY_API_TOKEN", wrong)
		for _, args := range [][]string{{"list"}, {"show", r.ids[0]}, {"redeliver", r.ids[0]}} {
			out, errOut := do(t, 1, args...)
			if !strings.Contains(errOut, "rejected the API token") || !strings.Contains(errOut, "RELAY_API_TOKEN") {
				t.Errorf("%v: stderr = %q, want a clear token message", args, errOut)
			}
			for _, secret := range []string{wrong, cliAPIToken} {
				if strings.Contains(out+errOut, secret) {
					t.Errorf("%v: output shows a token:\n%s%s", args, out, errOut)
				}
			}
		}
	})

	t.Run("no server", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gone := "http://" + ln.Addr().String()
		ln.Close()
		args := []string{"list", "--url", gone}
		code, out, errOut := cli(t, args...)
		wantCode(t, args, code, 1, out, errOut)
		for _, want := range []string{"cannot connect", gone, "--url"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, want)
			}
		}
		if strings.Contains(errOut, cliAPIToken) {
			t.Errorf("stderr shows the token: %q", errOut)
		}
	})
}

func setState(t *testing.T, dbURL, id, state string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, `UPDATE deliveries SET state = $2 WHERE operation_id = $1`, id, state)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("set %s to %s: %v (%d rows)", id, state, err, tag.RowsAffected())
	}
}

// failDelivery makes a delivery dead after two attempts, as the worker
// would have recorded them (test setup straight in the database).
func failDelivery(t *testing.T, dbURL, id, lastErr string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	at := time.Now().Add(-time.Minute)
	batch := &pgx.Batch{}
	batch.Queue(`UPDATE deliveries SET state = 'dead', attempts = 2, last_error = $2 WHERE operation_id = $1`, id, lastErr)
	const insert = `INSERT INTO attempts (operation_id, attempt, ucwa_operation_id, outcome, pool, http_status, ucwa_code,
    ucwa_subcode, reason, error, latency_ms, started_at, finished_at)
VALUES ($1, $2, $3, $4, 'pool1.contoso.com', $5, $6, $7, $8, $9, $10, $11, $11)`
	batch.Queue(insert, id, 1, id+"-a1", "retry", nil, "", "", "timeout", "no answer in 38s", 37940.0, at)
	batch.Queue(insert, id, 2, id+"-a2", "permanent", 403, "Forbidden", "DeclinedByRecipient", "declined",
		"the recipient declined", 230.4, at.Add(time.Second))
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatalf("fail delivery %s: %v", id, err)
	}
}

// TestDeliveriesUsage checks the mistakes caught before any request.
func TestDeliveriesUsage(t *testing.T) {
	isolateEnv(t, cliAPIToken)
	// Nothing listens here: a usage error must come before any request.
	u := "http://127.0.0.1:1"
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"list", "extra", "--url", u},
		{"list", "--state", "lost", "--url", u},
		{"list", "--limit", "501", "--url", u},
		{"list", "--limit", "-1", "--url", u},
		{"list", "--since", "yesterday", "--url", u},
		{"list", "--nope", "--url", u},
		{"list", "--url", "ftp://relay.example.com"},
		{"list", "--url", "http://user:pw@relay.example.com"},
		{"list", "--timeout", "0s", "--url", u},
		{"show", "--url", u},
		{"show", "a", "b", "--url", u},
		{"show", "../../metrics", "--url", u},
		{"redeliver", "--url", u},
		{"redeliver", "ok-1", "bad/id", "--url", u},
	} {
		code, out, errOut := cli(t, args...)
		wantCode(t, args, code, 2, out, errOut)
		if strings.Contains(errOut, "cannot connect") {
			t.Errorf("%v: made a request before checking its arguments: %s", args, errOut)
		}
	}

	t.Run("no token", func(t *testing.T) {
		t.Setenv("RELAY_API_TOKEN", "")
		args := []string{"list", "--url", u}
		code, out, errOut := cli(t, args...)
		wantCode(t, args, code, 2, out, errOut)
		if !strings.Contains(errOut, "RELAY_API_TOKEN") {
			t.Errorf("stderr = %q, want it to name RELAY_API_TOKEN", errOut)
		}
	})
	t.Run("both token variables", func(t *testing.T) {
		t.Setenv("RELAY_API_TOKEN_FILE", "/nonexistent")
		args := []string{"list", "--url", u}
		code, out, errOut := cli(t, args...)
		wantCode(t, args, code, 2, out, errOut)
		if strings.Contains(errOut, cliAPIToken) {
			t.Errorf("stderr shows the token: %q", errOut)
		}
	})
}

// TestDeliveriesOddServers covers answers a relay should not give but a
// wrong --url or a proxy might.
func TestDeliveriesOddServers(t *testing.T) {
	t.Parallel()
	const token = "odd-token-6a1d"
	getenv := func(k string) string {
		if k == "RELAY_API_TOKEN" {
			return token
		}
		return ""
	}
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the token followed a redirect")
		}
		_, _ = io.WriteString(w, `{"deliveries":[]}`)
	}))
	t.Cleanup(elsewhere.Close)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    []string
	}{
		{
			name: "audit API off",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				_, _ = io.WriteString(w, `{"error":"the audit API is off: set api.bearer_token_file (or RELAY_API_TOKEN) to turn it on"}`)
			},
			want: []string{"refused the audit API", "HTTP 403", "the audit API is off"},
		},
		{
			name: "not JSON",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "<html>hello</html>")
			},
			want: []string{"something other than JSON"},
		},
		{
			name: "redirect",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, elsewhere.URL+"/v1/deliveries", http.StatusFound)
			},
			want: []string{"redirect", "--url"},
		},
		{
			name: "escape sequences in the error",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusBadGateway)
				_, _ = io.WriteString(w, "bad\x1b[31m gateway\r\n")
			},
			want: []string{"HTTP 502: bad [31m gateway"},
		},
		{
			name: "echoes the token",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"error":"wrong bearer token `+r.Header.Get("Authorization")+`"}`)
			},
			want: []string{"rejected the API token", "wrong bearer token Bearer [REDACTED]"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			var out, errOut bytes.Buffer
			err := runDeliveries(context.Background(), []string{"list", "--url", srv.URL}, getenv, &out, &errOut)
			if err == nil {
				t.Fatalf("list = nil error, want one containing %q", tc.want)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("list error = %q, want it to contain %q", err, want)
				}
			}
			if strings.ContainsRune(err.Error(), '\x1b') || strings.Contains(err.Error(), token) {
				t.Errorf("list error %q holds an escape character or the token", err)
			}
		})
	}
}

func TestParseWhen(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "1h", want: now.Add(-time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "2d", want: now.Add(-48 * time.Hour)},
		{in: "0s", want: now},
		{in: "2026-11-27T13:00:00Z", want: time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)},
		{in: "2026-11-27T13:00:00+01:00", want: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)},
		{in: "-1h", bad: true},
		{in: "yesterday", bad: true},
		{in: "xd", bad: true},
		{in: "2026-11-27", bad: true},
		{in: "", bad: true},
	} {
		got, err := parseWhen(tc.in, now)
		switch {
		case tc.bad && err == nil:
			t.Errorf("parseWhen(%q) = %v, want an error", tc.in, got)
		case !tc.bad && err != nil:
			t.Errorf("parseWhen(%q) = %v", tc.in, err)
		case !tc.bad && !got.Equal(tc.want):
			t.Errorf("parseWhen(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestListenURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1:9095":   "http://127.0.0.1:9095",
		"0.0.0.0:9095":     "http://127.0.0.1:9095",
		"[::]:9095":        "http://127.0.0.1:9095",
		":9095":            "http://127.0.0.1:9095",
		"[::1]:9095":       "http://[::1]:9095",
		"relay.local:8080": "http://relay.local:8080",
	} {
		if got := listenURL(in); got != want {
			t.Errorf("listenURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{230400 * time.Microsecond, "230ms"},
		{1500 * time.Millisecond, "1.5s"},
		{9960 * time.Millisecond, "10s"},
		{37940 * time.Millisecond, "38s"},
		{59600 * time.Millisecond, "1m 0s"},
		{5 * time.Minute, "5m 0s"},
		{5*time.Minute + 7*time.Second, "5m 7s"},
		{2*time.Hour + 5*time.Minute + 20*time.Second, "2h 5m"},
		{76*time.Hour + 10*time.Minute, "3d 4h"},
		{-1500 * time.Millisecond, "-1.5s"},
	} {
		if got := humanDuration(tc.in); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"[FIRING:2] HighCPU prod\n\nCPU above 90%": "[FIRING:2] HighCPU prod",
		"\n  \n  (2/3) rest of it  \nmore":         "(2/3) rest of it",
		"":                                         "",
	} {
		if got := summary(in); got != want {
			t.Errorf("summary(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanAndTruncate(t *testing.T) {
	t.Parallel()
	if got, want := oneLine("a\nb\tc\x1b[2J  d\u2028e"), "a b c [2J d e"; got != want {
		t.Errorf("oneLine = %q, want %q", got, want)
	}
	if got, want := clean("line 1\r\nline\t2\x1b]0;x\x07", true), "line 1\nline\t2 ]0;x "; got != want {
		t.Errorf("clean(multiline) = %q, want %q", got, want)
	}
	if got, want := truncateRunes("ééééé", 3), "éé…"; got != want {
		t.Errorf("truncateRunes = %q, want %q", got, want)
	}
	if got := truncateRunes("abc", 3); got != "abc" {
		t.Errorf("truncateRunes(abc, 3) = %q, want abc", got)
	}
}

// TestDeliveriesListAllCap follows pages from a fake audit API: --all stops
// at its cap and says where to continue, and a cursor that does not move
// ends the listing instead of looping.
func TestDeliveriesListAllCap(t *testing.T) {
	t.Parallel()
	getenv := func(k string) string {
		if k == "RELAY_API_TOKEN" {
			return "cap-token"
		}
		return ""
	}
	page := func(w http.ResponseWriter, n int, next string) {
		rows := make([]map[string]any, n)
		for i := range rows {
			rows[i] = map[string]any{"operationId": "01AAAAAAAAAAAAAAAAAAAAAAAA-1", "state": "dead", "createdAt": time.Now()}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"deliveries": rows, "nextCursor": next})
	}
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		page(w, 500, strconv.Itoa(n+1))
	}))
	t.Cleanup(endless.Close)
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page(w, 2, "same")
	}))
	t.Cleanup(stuck.Close)

	var out, errOut bytes.Buffer
	if err := runDeliveries(context.Background(), []string{"list", "--all", "--url", endless.URL}, getenv, &out, &errOut); err != nil {
		t.Fatalf("list --all = %v", err)
	}
	if rows := strings.Count(out.String(), "\n") - 1; rows != maxAllRows {
		t.Errorf("list --all printed %d rows, want the cap %d", rows, maxAllRows)
	}
	if want := fmt.Sprintf("stopped after %d deliveries (the --all limit); continue with --cursor 20\n", maxAllRows); errOut.String() != want {
		t.Errorf("stderr = %q, want %q", errOut.String(), want)
	}

	out.Reset()
	errOut.Reset()
	if err := runDeliveries(context.Background(), []string{"list", "--all", "--json", "--url", stuck.URL}, getenv, &out, &errOut); err != nil {
		t.Fatalf("list --all (stuck cursor) = %v", err)
	}
	var got struct {
		Deliveries []json.RawMessage `json:"deliveries"`
		NextCursor string            `json:"nextCursor"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got.Deliveries) != 4 || got.NextCursor != "" {
		t.Errorf("list --all --json (stuck cursor) = %d deliveries, cursor %q (err %v), want 4 and none", len(got.Deliveries), got.NextCursor, err)
	}
}
