package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay"
)

// problemsOf parses yaml and returns its problems as "key|line|msg" strings,
// failing the test when Parse succeeds.
func problemsOf(t *testing.T, yaml string, getenv func(string) string) Problems {
	t.Helper()
	cfg, err := Parse([]byte(yaml), t.TempDir(), getenv)
	if err == nil {
		t.Fatalf("Parse() = %+v, want an error", cfg)
	}
	if !errors.Is(err, relay.ErrInvalid) {
		t.Errorf("Parse() error %v is not relay.ErrInvalid", err)
	}
	ps := AsProblems(err)
	if len(ps) == 0 {
		t.Fatalf("Parse() error %v holds no Problems", err)
	}
	return ps
}

func TestUnknownKeysNamePathAndLine(t *testing.T) {
	t.Parallel()
	yaml := `listen_address: 127.0.0.1:9095
lisen: x
conversations:
  oncall:
    to: "sip:oncall@contoso.com"
    subjet: typo
routes:
  - name: prod
    format: alertmanager
    conversations: [oncall]
  - name: dev
    formt: alertmanager
    format: alertmanager
    conversations: [oncall]
ucwa:
  timers:
    retry: 1s
`
	ps := problemsOf(t, yaml, nil)
	want := []string{
		"lisen: unknown key (line 2)",
		"conversations.oncall.subjet: unknown key (did you mean subject?) (line 6)",
		"routes[1].formt: unknown key (did you mean format?) (line 12)",
		"ucwa.timers.retry: unknown key (line 17)",
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}
	msg := Problems(ps).Error()
	if !strings.HasPrefix(msg, "4 problems:\n  lisen: unknown key (line 2)\n  conversations.oncall.subjet: ") {
		t.Errorf("Error() = %q, want a readable list, one problem per line", msg)
	}
}

func TestSecretFieldsAreNotKeys(t *testing.T) {
	t.Parallel()
	// Secret values themselves can never be given in the file.
	ps := problemsOf(t, "api: {bearer_token: abc}\nucwa: {password: pw}\ndatabase: {url: postgres://pw@x}\n"+minimal, nil)
	if got, want := ps.Keys(), []string{"api.bearer_token", "ucwa.password", "database.url"}; !cmp.Equal(got, want) {
		t.Errorf("keys = %q, want %q", got, want)
	}
	for i, want := range []string{"RELAY_API_TOKEN", "RELAY_UCWA_PASSWORD", "DATABASE_URL"} {
		if !strings.Contains(ps[i].Msg, want) {
			t.Errorf("problem %q does not point at %s", ps[i], want)
		}
	}
	for _, p := range ps {
		if strings.Contains(p.Error(), "abc") || strings.Contains(p.Error(), "pw") {
			t.Errorf("problem %q echoes the value of an unknown key", p)
		}
	}
}

func TestBadValuesNameKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, key, msg string
	}{
		{"duration word", "ingest: {dedup_window: soon}\n", "ingest.dedup_window", `want a duration such as 30s or 5m, got "soon"`},
		{"duration number", "ingest: {read_timeout: 10}\n", "ingest.read_timeout", "want a duration"},
		{"int word", "database: {max_conns: many}\n", "database.max_conns", `want an integer, got "many"`},
		{"int float", "ingest: {batch_max: 1.5}\n", "ingest.batch_max", "want an integer"},
		{"int overflow", "database: {max_conns: 99999999999999999999}\n", "database.max_conns", "want an integer"},
		{"bool", "ucwa: {insecure_skip_verify: maybe}\n", "ucwa.insecure_skip_verify", "want true or false"},
		{"list for string", "log: {level: [info]}\n", "log.level", "want a string, got a list"},
		{"scalar for list", "ucwa: {discovery_urls: https://x.example}\n", "ucwa.discovery_urls", "want a list"},
		{"scalar for section", "ingest: fast\n", "ingest", `want a mapping, got the value "fast"`},
		{"list for map", "conversations: [a]\n" + routeYAML, "conversations", "want a mapping"},
		{"top level list", "- a\n", "", "want a mapping"},
		{"duplicate key", "log: {level: info}\nlog: {level: debug}\n", "log", "duplicate key (first set on line 1)"},
		{"unknown key with anchor", "base: &b {level: info}\n", "base", "unknown key"},
		{"merge into section", "x: &b {level: info}\nlog:\n  <<: *b\n", `log["<<"]`, "merge keys are not supported"},
		{"non-string key", "? [a]\n: b\n", "", "mapping keys must be plain strings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := problemsOf(t, tc.yaml+minimalExcept(tc.yaml), nil)
			p := findProblem(ps, tc.key, tc.msg)
			if p == nil {
				t.Fatalf("problems:\n%v\nwant one with key %q and message containing %q", ps, tc.key, tc.msg)
			}
			if p.Line == 0 {
				t.Errorf("problem %q has no line", p)
			}
		})
	}
}

// findProblem returns the problem with key whose message contains msg.
func findProblem(ps Problems, key, msg string) *Problem {
	for _, p := range ps {
		if p.Key == key && strings.Contains(p.Msg, msg) {
			return p
		}
	}
	return nil
}

// minimalExcept returns the sections of minimal not already in yaml.
func minimalExcept(yaml string) string {
	has := func(section string) bool {
		return strings.HasPrefix(yaml, section+":") || strings.Contains(yaml, "\n"+section+":")
	}
	out := ""
	if !has("conversations") {
		out += convsYAML
	}
	if !has("routes") {
		out += routeYAML
	}
	if strings.HasPrefix(yaml, "-") || strings.HasPrefix(yaml, "?") {
		return ""
	}
	return out
}

func TestAliasesAreResolved(t *testing.T) {
	t.Parallel()
	yaml := `conversations:
  oncall: &c {to: "sip:oncall@contoso.com", importance: Urgent}
  copy: *c
routes:
  - {name: prod, format: alertmanager, conversations: [oncall, copy]}
`
	cfg := mustParse(t, yaml, "", nil)
	if got := cfg.Conversations["copy"]; got.Importance != "Urgent" || got.Name != "copy" {
		t.Errorf(`Conversations["copy"] = %+v, want the aliased values named copy`, got)
	}
}

func TestAliasBombIsBounded(t *testing.T) {
	t.Parallel()
	// 1000 routes aliasing one route whose list aliases 1000 items: a 10 KB
	// file that expands to a million nodes. The walk must stop early with
	// one clear problem instead of a million.
	var b strings.Builder
	b.WriteString("x: &l [" + strings.Repeat("oncall, ", 999) + "oncall]\n" + convsYAML)
	b.WriteString("routes:\n  - &r {name: prod, format: alertmanager, conversations: *l}\n")
	b.WriteString(strings.Repeat("  - *r\n", 999))
	ps := problemsOf(t, b.String(), nil)
	if len(ps) != 2 || ps[0].Key != "x" || !strings.Contains(ps[1].Msg, "too complex") {
		t.Errorf("problems = %v, want x unknown and one saying the document is too complex", ps)
	}
}

func TestMultipleDocumentsRejected(t *testing.T) {
	t.Parallel()
	ps := problemsOf(t, minimal+"---\n"+minimal, nil)
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, "more than one YAML document") || ps[0].Line != 5 {
		t.Errorf("problems = %v, want one 'more than one YAML document' at line 5 (the second ---)", ps)
	}
}

func TestEmptyAndInvalidYAML(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml, msg string }{
		{"empty", "", "config is empty"},
		{"comment only", "# nothing\n", "config is empty"},
		{"syntax", "routes: [\n", "invalid YAML"},
		{"tab indent", "log:\n\tlevel: info\n", "invalid YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := problemsOf(t, tc.yaml, nil)
			if !strings.Contains(ps[0].Msg, tc.msg) {
				t.Errorf("problems = %v, want %q", ps, tc.msg)
			}
		})
	}
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	big := minimal + "#" + strings.Repeat("x", MaxFileSize) + "\n"
	_, err := Parse([]byte(big), "", nil)
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("Parse(%d bytes) = %v, want a size limit error", len(big), err)
	}
	path := writeFile(t, t.TempDir(), "big.yaml", big)
	_, err = Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("Load(%d bytes) = %v, want a size limit error", len(big), err)
	}
	// Just under the limit is fine.
	ok := minimal + "#" + strings.Repeat("x", MaxFileSize-len(minimal)-2) + "\n"
	if _, err := Parse([]byte(ok), "", nil); err != nil {
		t.Errorf("Parse(%d bytes) error: %v", len(ok), err)
	}
}

func TestNullKeepsDefault(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, "ingest:\n  batch_max: ~\nucwa:\nlog:\n"+minimal, "", nil)
	if cfg.Ingest.BatchMax != DefaultBatchMax || cfg.Log.Level != DefaultLogLevel {
		t.Errorf("BatchMax = %d, Log.Level = %q; want defaults", cfg.Ingest.BatchMax, cfg.Log.Level)
	}
}
