package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestValidationProblems(t *testing.T) {
	t.Parallel()
	const ucwaOK = "ucwa: {discovery_urls: [\"https://lyncdiscover.contoso.com\"], username: a@contoso.com}\n"
	pw := env(EnvUCWAPassword, "pw")
	long := strings.Repeat("a", 250)

	for _, tc := range []struct {
		name   string
		yaml   string // sections missing from it are taken from minimal
		getenv func(string) string
		key    string
		msg    string
	}{
		{name: "listen no port", yaml: "listen_address: localhost\n", key: "listen_address", msg: "want host:port"},
		{name: "listen empty", yaml: "listen_address: \"\"\n", key: "listen_address", msg: "must not be empty"},
		{name: "listen scheme", yaml: "listen_address: http://x:1\n", key: "listen_address", msg: "without scheme"},
		{name: "listen port range", yaml: "listen_address: 127.0.0.1:70000\n", key: "listen_address", msg: "bad port"},
		{name: "listen bad host", yaml: "listen_address: ex_ample..com:80\n", key: "listen_address", msg: "bad host name"},

		{name: "max_conns zero", yaml: "database: {max_conns: 0}\n", key: "database.max_conns", msg: "between 1 and 1000, got 0"},
		{name: "max_conns huge", yaml: "database: {max_conns: 5000}\n", key: "database.max_conns", msg: "between 1 and 1000"},

		{name: "max_body_bytes zero", yaml: "ingest: {max_body_bytes: 0}\n", key: "ingest.max_body_bytes", msg: "between 1 and"},
		{name: "max_body_bytes huge", yaml: "ingest: {max_body_bytes: 1073741824}\n", key: "ingest.max_body_bytes", msg: "between 1 and"},
		{name: "dedup zero", yaml: "ingest: {dedup_window: 0s}\n", key: "ingest.dedup_window", msg: "must be > 0 and <= 24h"},
		{name: "dedup negative", yaml: "ingest: {dedup_window: -1m}\n", key: "ingest.dedup_window", msg: "must be > 0 and <= 24h"},
		{name: "dedup too long", yaml: "ingest: {dedup_window: 25h}\n", key: "ingest.dedup_window", msg: "got 25h0m0s"},
		{name: "retention short", yaml: "retention: 1h\n", key: "retention", msg: "at least 24h"},
		{name: "retention negative", yaml: "retention: -24h\n", key: "retention", msg: "got -24h0m0s"},
		{name: "retention within dedup", yaml: "retention: 24h\ningest: {dedup_window: 24h}\n", key: "retention", msg: "ingest.dedup_window + 1h"},
		{name: "read_timeout", yaml: "ingest: {read_timeout: 0s}\n", key: "ingest.read_timeout", msg: "positive"},
		{name: "write_timeout", yaml: "ingest: {write_timeout: -1s}\n", key: "ingest.write_timeout", msg: "positive"},
		{name: "idle_timeout", yaml: "ingest: {idle_timeout: 0s}\n", key: "ingest.idle_timeout", msg: "positive"},
		{name: "request_timeout", yaml: "ingest: {request_timeout: 0s}\n", key: "ingest.request_timeout", msg: "positive"},
		{name: "batch_max", yaml: "ingest: {batch_max: 0}\n", key: "ingest.batch_max", msg: "between 1 and"},
		{name: "batch_max_bytes", yaml: "ingest: {batch_max_bytes: 1024}\n", key: "ingest.batch_max_bytes", msg: "between 65536 and"},
		{name: "max_messages_per_notification one", yaml: "ingest: {max_messages_per_notification: 1}\n", key: "ingest.max_messages_per_notification", msg: "between 2 and 1000"},
		{name: "max_messages_per_notification huge", yaml: "ingest: {max_messages_per_notification: 1001}\n", key: "ingest.max_messages_per_notification", msg: "got 1001"},
		{name: "max_inflight_bytes zero", yaml: "ingest: {max_inflight_bytes: 0}\n", key: "ingest.max_inflight_bytes", msg: "between 1 and"},
		{name: "max_inflight_bytes below a body", yaml: "ingest: {max_body_bytes: 2048, max_inflight_bytes: 2047}\n", key: "ingest.max_inflight_bytes", msg: "at least ingest.max_body_bytes (2048)"},
		{name: "write_timeout equals request_timeout", yaml: "ingest: {write_timeout: 10s, request_timeout: 10s, read_timeout: 1s}\n", key: "ingest.write_timeout", msg: "at least ingest.request_timeout (10s) + 5s"},
		{name: "write_timeout below request_timeout", yaml: "ingest: {write_timeout: 5s, request_timeout: 10s, read_timeout: 1s}\n", key: "ingest.write_timeout", msg: "ingest.request_timeout (10s)"},
		{name: "write_timeout not above read_timeout", yaml: "ingest: {read_timeout: 30s}\n", key: "ingest.write_timeout", msg: "longer than ingest.read_timeout (30s)"},

		{name: "discovery scheme", yaml: "ucwa: {discovery_urls: [\"ftp://x.example\"], username: u}\n", getenv: pw, key: "ucwa.discovery_urls[0]", msg: "absolute http or https"},
		{name: "discovery relative", yaml: "ucwa: {discovery_urls: [lyncdiscover.contoso.com], username: u}\n", getenv: pw, key: "ucwa.discovery_urls[0]", msg: "absolute http or https"},
		{name: "discovery no host", yaml: "ucwa: {discovery_urls: [\"https://\"], username: u}\n", getenv: pw, key: "ucwa.discovery_urls[0]", msg: "no host"},
		{name: "discovery credentials", yaml: "ucwa: {discovery_urls: [\"https://u:pw@x.example/\"], username: u}\n", getenv: pw, key: "ucwa.discovery_urls[0]", msg: "must not hold credentials"},
		{name: "discovery fragment", yaml: "ucwa: {discovery_urls: [\"https://x.example/#a\"], username: u}\n", getenv: pw, key: "ucwa.discovery_urls[0]", msg: "fragment"},
		{name: "discovery duplicate", yaml: "ucwa: {discovery_urls: [\"https://x.example\", \"https://x.example\"], username: u}\n", getenv: pw, key: "ucwa.discovery_urls[1]", msg: "repeats ucwa.discovery_urls[0]"},
		{name: "username required", yaml: "ucwa: {discovery_urls: [\"https://x.example\"]}\n", getenv: pw, key: "ucwa.username", msg: "required when ucwa.discovery_urls is set"},
		{name: "password required", yaml: ucwaOK, key: "ucwa.password_file", msg: "RELAY_UCWA_PASSWORD"},
		{name: "discovery required", yaml: "ucwa: {username: u}\n", key: "ucwa.discovery_urls", msg: "required when ucwa.username is set"},
		{name: "allowed host url", yaml: "ucwa: {discovery_urls: [\"https://x.example\"], username: u, allowed_hosts: [\"https://fe1.example\"]}\n", getenv: pw, key: "ucwa.allowed_hosts[0]", msg: "without scheme"},
		{name: "allowed host port", yaml: "ucwa: {discovery_urls: [\"https://x.example\"], username: u, allowed_hosts: [\"fe1.example:0\"]}\n", getenv: pw, key: "ucwa.allowed_hosts[0]", msg: "bad port"},
		{name: "allowed host space", yaml: "ucwa: {discovery_urls: [\"https://x.example\"], username: u, allowed_hosts: [\"fe1 example\"]}\n", getenv: pw, key: "ucwa.allowed_hosts[0]", msg: "without scheme or path"},
		{name: "ca_file missing", yaml: "ucwa: {discovery_urls: [\"https://x.example\"], username: u, ca_file: nope.pem}\n", getenv: pw, key: "ucwa.ca_file", msg: "no such file"},
		{name: "ca_file not pem", yaml: "ucwa: {discovery_urls: [\"https://x.example\"], username: u, ca_file: notpem.pem}\n", getenv: pw, key: "ucwa.ca_file", msg: "holds no PEM certificate"},
		{name: "timer request", yaml: "ucwa: {timers: {request_timeout: 0s}}\n", key: "ucwa.timers.request_timeout", msg: "positive"},
		{name: "timer event", yaml: "ucwa: {timers: {event_timeout: 0s}}\n", key: "ucwa.timers.event_timeout", msg: "positive"},
		{name: "timer event max", yaml: "ucwa: {timers: {event_timeout: 31m}}\n", key: "ucwa.timers.event_timeout", msg: "<= 30m"},
		{name: "timer invitation", yaml: "ucwa: {timers: {invitation_timeout: 0s}}\n", key: "ucwa.timers.invitation_timeout", msg: "positive"},
		{name: "timer message", yaml: "ucwa: {timers: {message_timeout: 0s}}\n", key: "ucwa.timers.message_timeout", msg: "positive"},
		{name: "timer retry_min", yaml: "ucwa: {timers: {retry_min: 0s}}\n", key: "ucwa.timers.retry_min", msg: "positive"},
		{name: "timer retry_max", yaml: "ucwa: {timers: {retry_max: 0s}}\n", key: "ucwa.timers.retry_max", msg: "positive"},
		{name: "timer retry order", yaml: "ucwa: {timers: {retry_min: 2m}}\n", key: "ucwa.timers.retry_max", msg: "must be >= ucwa.timers.retry_min"},
		{name: "timer failover_min", yaml: "ucwa: {timers: {failover_min: 0s}}\n", key: "ucwa.timers.failover_min", msg: "positive"},
		{name: "timer failover_max", yaml: "ucwa: {timers: {failover_max: 0s}}\n", key: "ucwa.timers.failover_max", msg: "positive"},
		{name: "timer failover order", yaml: "ucwa: {timers: {failover_min: 10m}}\n", key: "ucwa.timers.failover_max", msg: "must be >= ucwa.timers.failover_min"},

		{name: "conversation name", yaml: "conversations: {OnCall: {to: \"sip:a@b.c\"}, oncall: {to: \"sip:a@b.c\"}}\n", key: "conversations.OnCall", msg: "name must match"},
		{name: "conversation to missing", yaml: "conversations: {oncall: {subject: x}}\n", key: "conversations.oncall.to", msg: "required"},
		{name: "conversation to no scheme", yaml: "conversations: {oncall: {to: oncall@contoso.com}}\n", key: "conversations.oncall.to", msg: "want a SIP URI"},
		{name: "conversation to space", yaml: "conversations: {oncall: {to: \"sip:on call@contoso.com\"}}\n", key: "conversations.oncall.to", msg: "want a SIP URI"},
		{name: "conversation to no host", yaml: "conversations: {oncall: {to: \"sip:oncall\"}}\n", key: "conversations.oncall.to", msg: "want a SIP URI"},
		{name: "conversation to tel", yaml: "conversations: {oncall: {to: \"tel:+123\"}}\n", key: "conversations.oncall.to", msg: "want a SIP URI"},
		{name: "conversation to long", yaml: "conversations: {oncall: {to: \"sip:" + strings.Repeat("a", 250) + "@contoso.com\"}}\n", key: "conversations.oncall.to", msg: "longer than 256"},
		{name: "subject long", yaml: "conversations: {oncall: {to: \"sip:a@b.c\", subject: \"" + long + "é\"}}\n", key: "conversations.oncall.subject", msg: "longer than 250 characters (251)"},
		{name: "importance", yaml: "conversations: {oncall: {to: \"sip:a@b.c\", importance: High}}\n", key: "conversations.oncall.importance", msg: "want one of Normal, Urgent, Emergency, got \"High\""},
		{name: "importance case", yaml: "conversations: {oncall: {to: \"sip:a@b.c\", importance: urgent}}\n", key: "conversations.oncall.importance", msg: "want one of"},

		{name: "no routes key", yaml: convsYAML + "log: {level: info}\nroutes: ~\n", key: "routes", msg: "at least one route"},
		{name: "routes empty", yaml: "routes: []\n", key: "routes", msg: "at least one route"},
		{name: "route name missing", yaml: "routes: [{format: alertmanager, conversations: [oncall]}]\n", key: "routes[0].name", msg: "required"},
		{name: "route name upper", yaml: "routes: [{name: Prod, format: alertmanager, conversations: [oncall]}]\n", key: "routes[0].name", msg: "must match"},
		{name: "route name slash", yaml: "routes: [{name: a/b, format: alertmanager, conversations: [oncall]}]\n", key: "routes[0].name", msg: "must match"},
		{name: "route name long", yaml: "routes: [{name: " + strings.Repeat("a", 64) + ", format: alertmanager, conversations: [oncall]}]\n", key: "routes[0].name", msg: "must match"},
		{name: "route name duplicate", yaml: "routes: [{name: a, format: alertmanager, conversations: [oncall]}, {name: a, format: alertmanager, conversations: [oncall]}]\n", key: "routes[1].name", msg: "also the name of routes[0]"},
		{name: "route names share env", yaml: "routes: [{name: a-b, format: alertmanager, conversations: [oncall]}, {name: a_b, format: alertmanager, conversations: [oncall]}]\n", key: "routes[1].name", msg: "RELAY_ROUTE_A_B_TOKEN"},
		{name: "max_resends negative", yaml: "routes: [{name: a, format: alertmanager, conversations: [oncall], delivery: {max_resends: -1}}]\n", key: "routes[0].delivery.max_resends", msg: "between 0 and 100, got -1"},
		{name: "max_resends huge", yaml: "routes: [{name: a, format: alertmanager, conversations: [oncall], delivery: {max_resends: 101}}]\n", key: "routes[0].delivery.max_resends", msg: "between 0 and 100"},
		{name: "format missing", yaml: "routes: [{name: a, conversations: [oncall]}]\n", key: "routes[0].format", msg: "required (one of alertmanager, github, gitlab, generic)"},
		{name: "format unknown", yaml: "routes: [{name: a, format: jenkins, conversations: [oncall]}]\n", key: "routes[0].format", msg: "want one of alertmanager, github, gitlab, generic, got \"jenkins\""},
		{name: "github without secret", yaml: "routes: [{name: a, format: github, conversations: [oncall]}]\n", key: "routes[0].secret_file", msg: "required for format github"},
		{name: "secret on alertmanager", yaml: "routes: [{name: a, format: alertmanager, conversations: [oncall], secret_file: /nonexistent}]\n", key: "routes[0].secret_file", msg: "does not exist"},
		{name: "bad matcher", yaml: "routes: [{name: a, format: alertmanager, rules: [{match: ['severity=~\"(\"'], conversations: [oncall]}]}]\n", key: "routes[0].rules[0].match", msg: "matcher"},
		{name: "rule unknown conversation", yaml: "routes: [{name: a, format: alertmanager, rules: [{match: ['a=b'], conversations: [ghost]}]}]\n", key: "routes[0].rules[0].conversations[0]", msg: "unknown conversation"},
		{name: "no conversations or rules", yaml: "routes: [{name: a, format: alertmanager}]\n", key: "routes[0].conversations", msg: "or rules"},
		{name: "split_status on generic", yaml: "routes: [{name: a, format: generic, conversations: [oncall], split_status: true}]\n", key: "routes[0].split_status", msg: "alertmanager routes only"},
		{name: "route conversations missing", yaml: "routes: [{name: a, format: alertmanager}]\n", key: "routes[0].conversations", msg: "at least one"},
		{name: "route conversations empty", yaml: "routes: [{name: a, format: alertmanager, conversations: []}]\n", key: "routes[0].conversations", msg: "at least one"},
		{name: "route conversation unknown", yaml: "routes: [{name: a, format: alertmanager, conversations: [oncall, nobody]}]\n", key: "routes[0].conversations[1]", msg: "unknown conversation \"nobody\""},
		{name: "route conversation twice", yaml: "routes: [{name: a, format: alertmanager, conversations: [oncall, oncall]}]\n", key: "routes[0].conversations[1]", msg: "listed twice"},
		{name: "template file missing", yaml: "routes: [{name: a, format: alertmanager, conversations: [oncall], template: t/missing.tmpl}]\n", key: "routes[0].template", msg: "no such file"},
		{name: "template dir", yaml: "routes: [{name: a, format: alertmanager, conversations: [oncall], template: ./}]\n", key: "routes[0].template", msg: "not a regular file"},

		{name: "log level", yaml: "log: {level: verbose}\n", key: "log.level", msg: "want one of debug, info, warn, error"},
		{name: "log format", yaml: "log: {format: xml}\n", key: "log.format", msg: "want one of json, text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, dir, "notpem.pem", "not a certificate\n")
			getenv := tc.getenv
			if getenv == nil {
				getenv = env()
			}
			_, err := Parse([]byte(tc.yaml+minimalExcept(tc.yaml)), dir, getenv)
			if err == nil {
				t.Fatalf("Parse() succeeded, want a problem at %s", tc.key)
			}
			ps := AsProblems(err)
			p := findProblem(ps, tc.key, tc.msg)
			if p == nil {
				t.Fatalf("Parse() error:\n%v\nwant a problem with key %q containing %q", err, tc.key, tc.msg)
			}
			if len(ps) != 1 {
				t.Errorf("Parse() error:\n%v\nwant only the %s problem", err, tc.key)
			}
			if !strings.Contains(err.Error(), tc.key+": ") {
				t.Errorf("Error() = %q does not name %s", err, tc.key)
			}
			if p.Line == 0 {
				t.Errorf("problem %q has no line number", p)
			}
		})
	}
}

func TestAllProblemsReportedInFileOrder(t *testing.T) {
	t.Parallel()
	yaml := `listen_address: nope
ingest:
  dedup_window: 0s
  batch_mx: 3
conversations:
  oncall: {to: "bad", importance: High}
routes:
  - {name: Prod, format: github, conversations: [nobody]}
log: {level: loud}
`
	ps := problemsOf(t, yaml, env(EnvAPIToken, "a", EnvAPIToken+"_FILE", "/x"))
	want := []string{
		"listen_address", "ingest.dedup_window", "ingest.batch_mx",
		"conversations.oncall.to", "conversations.oncall.importance",
		"routes[0].name", "routes[0].conversations[0]", "routes[0].secret_file",
		"log.level", EnvAPIToken,
	}
	got := ps.Keys()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("problem keys =\n%q\nwant\n%q\nerror:\n%v", got, want, ps)
	}
}

func TestValidConfigsAccepted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml string }{
		{"listen all interfaces", "listen_address: \":9095\"\n"},
		{"listen ipv6", "listen_address: \"[::1]:9095\"\n"},
		{"listen port 0", "listen_address: \"127.0.0.1:0\"\n"},
		{"sip with port and dots", "conversations: {oncall: {to: \"sip:first.last+x@sub.contoso.com:5061\", importance: Emergency}}\n"},
		{"subject 250 runes", "conversations: {oncall: {to: \"sip:a@b.c\", subject: \"" + strings.Repeat("é", 250) + "\"}}\n"},
		{"route name max", "routes: [{name: " + strings.Repeat("a", 63) + ", format: alertmanager, conversations: [oncall]}]\n"},
		{"dedup 24h", "ingest: {dedup_window: 24h}\n"},
		{"retention kept for ever", "retention: 0s\n"},
		{"retention one day", "retention: 24h\n"},
		{"ucwa ipv6 host", "ucwa: {discovery_urls: [\"http://[::1]:8443/\"], username: u, allowed_hosts: [\"[::1]:8443\", \"::1\"]}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mustParse(t, tc.yaml+minimalExcept(tc.yaml), "", env(EnvUCWAPassword, "pw"))
		})
	}
}

func TestCAFile(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	yaml := "ucwa: {discovery_urls: [\"https://x.example\"], username: u, ca_file: ca.pem}\n" + minimal
	cfg := mustParse(t, yaml, dir, env(EnvUCWAPassword, "pw"))
	if cfg.UCWA.RootCAs == nil {
		t.Fatal("RootCAs = nil with ca_file set")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: cfg.UCWA.RootCAs}); err != nil {
		t.Errorf("the CA from ca_file is not trusted by RootCAs: %v", err)
	}
	if mustParse(t, minimal, dir, nil).UCWA.RootCAs != nil {
		t.Error("RootCAs set without ca_file")
	}
}

func TestConsoleValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		yaml string
		env  []string
		want string // a problem's key and message part; "" for none
	}{
		{"proxy without addresses", "console: { proxy: { user_header: X-Forwarded-User } }", nil,
			"console.proxy.trusted_addresses: required with console.proxy.user_header"},
		{"addresses without header", "console: { proxy: { trusted_addresses: [10.0.0.1] } }", nil,
			"console.proxy.user_header: required with"},
		{"bad header", "console: { proxy: { user_header: 'X User', trusted_addresses: [10.0.0.1] } }", nil,
			`console.proxy.user_header: "X User" is not an HTTP header name`},
		{"bad address", "console: { proxy: { user_header: X-User, trusted_addresses: [10.0.0.1, proxy.local] } }", nil,
			"console.proxy.trusted_addresses[1]: \"proxy.local\" is neither"},
		{"short key", "", []string{EnvConsoleCookieKey, "short"}, "console.cookie_key_file: the key (from env RELAY_CONSOLE_COOKIE_KEY) must be at least 32 bytes"},
		{"missing users file", "console: { users_file: nope.yml }", nil, "console.users_file:"},
		{"session ttl", "console: { session_ttl: 10s }", nil, "console.session_ttl: must be from 1m to 720h"},
		{"negative window", "api: { redeliver_window: -1s }", nil, "api.redeliver_window: must be from 0"},
		{"proxy ok", "console: { proxy: { user_header: X-Forwarded-User, trusted_addresses: [127.0.0.1, 10.0.0.0/8] } }", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(minimal+tc.yaml+"\n"), t.TempDir(), env(tc.env...))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Parse: %v, want no problem", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Parse: %v, want a problem containing %q", err, tc.want)
			}
		})
	}
}
