// Package deploy holds no code, only tests of the files in this folder.
// This one checks that the alerting rules, their unit tests and the Grafana
// dashboard use no metric that relay does not export. A renamed metric
// would otherwise leave an alert that can never fire and a panel that stays
// empty, and nothing else would notice. systemd_test.go checks the systemd
// unit; the Kubernetes manifests have their own module in kubernetes/.
//
// The tests live here rather than in relay/app because they are about these
// files: it runs relay only through app.Run and its registry, as a
// deployment does, and it does not slow the app package's tests.
package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/app/apptest"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
	"github.com/skype-relay/relay/relay/relaytest"
)

const (
	rulesFile     = "prometheus/relay-rules.yml"
	rulesTestFile = "prometheus/relay-rules.test.yml"
	dashboardFile = "grafana/relay.json"
)

// TestMonitoringUsesExportedMetrics runs relay against a real database and
// the UCWA simulator and compares every relay_* name in the rules, their
// tests and the dashboard with the metrics relay describes on its registry.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)
	if len(exported) < 10 {
		t.Fatalf("relay exports only %d relay_* metrics: %v", len(exported), exported)
	}

	var uses []use
	for _, f := range []struct {
		file string
		read func(testing.TB, string) []use
		min  int
	}{
		{rulesFile, ruleUses, 10},
		{rulesTestFile, ruleTestUses, 10},
		{dashboardFile, dashboardUses, 15},
	} {
		u := f.read(t, f.file)
		// Guards the extraction: a file read as empty would pass.
		if n := len(distinct(u)); n < f.min {
			t.Errorf("%s uses %d distinct relay_* names, want at least %d: is it read correctly?", f.file, n, f.min)
		}
		uses = append(uses, u...)
	}
	for _, p := range unknown(uses, exported) {
		t.Errorf("%s", p)
	}
}

// TestUnknownNamesAreReported shows that the check above can fail: made-up
// names, a histogram suffix on a gauge and a histogram without series yet
// are reported; names inside PromQL strings are not metrics.
func TestUnknownNamesAreReported(t *testing.T) {
	t.Parallel()
	exported := map[string]string{
		"relay_session_held":            "GAUGE",
		"relay_ingest_duration_seconds": "HISTOGRAM",
		"relay_fresh_seconds":           "", // described, no series yet
	}
	uses := exprUses("rules.yml: alert X",
		`rate(relay_made_up_total[5m]) > 0 and relay_session_held{job="relay_not_a_metric"} == 0`+
			` or histogram_quantile(0.9, rate(relay_ingest_duration_seconds_bucket[5m]))`+
			` or relay_session_held_bucket or relay_ingest_duration_seconds_count or relay_fresh_seconds_sum`)
	got := unknown(uses, exported)
	want := []string{
		"rules.yml: alert X: relay_fresh_seconds_sum: relay_fresh_seconds has no series yet, so whether it is a histogram is unknown: pre-initialise it",
		"rules.yml: alert X: relay_made_up_total is not a metric relay exports",
		"rules.yml: alert X: relay_session_held_bucket is not a metric relay exports",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unknown() mismatch (-want +got):\n%s", diff)
	}
}

// use is one relay_* name and where it was found.
type use struct {
	where, name string
}

// exportedMetrics starts relay on its own registry and returns the relay_*
// metrics it describes, with their types (GAUGE, HISTOGRAM, ...) where a
// series shows them, else "".
// Describe, not Gather: a vector whose labels appear only once something
// happens has no series yet but is described all the same.
func exportedMetrics(t *testing.T) map[string]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	startRelay(t, reg)

	out := map[string]string{}
	descs := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		// Desc keeps its name unexported; String is its only reader.
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		if strings.HasPrefix(m[1], "relay_") {
			out[m[1]] = ""
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if _, ok := out[f.GetName()]; ok {
			out[f.GetName()] = f.GetType().String()
		}
	}
	return out
}

var descName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

const simPassword = "sim-password-monitor"

// startRelay runs the whole relay, delivery included, against a fresh
// database and the UCWA simulator until the test ends.
func startRelay(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	sim, err := ucwasim.New(ucwasim.Config{Password: simPassword, TimeScale: 0.01, EmbedResources: true})
	if err != nil {
		t.Fatalf("ucwasim.New: %v", err)
	}
	t.Cleanup(sim.Close)
	cfgYAML := relaytest.UCWAYAML(sim.DiscoveryURLs()) + `
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
routes:
  - name: prod
    format: alertmanager
    conversations: [oncall]
`
	env := map[string]string{"DATABASE_URL": relaytest.NewDatabase(t), "RELAY_UCWA_PASSWORD": simPassword}
	apptest.Start(t, cfgYAML, env, nil, app.Options{Registry: reg})
}

// ruleUses reads the names from every rule's expression and annotations
// (a runbook that names a metric should name a real one).
func ruleUses(t testing.TB, path string) []use {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Record      string            `yaml:"record"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, path, &f)
	var out []use
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			where := fmt.Sprintf("%s: %s", path, r.Alert+r.Record)
			if r.Expr == "" {
				t.Errorf("%s has no expr", where)
			}
			out = append(out, exprUses(where, r.Expr)...)
			for k, v := range r.Annotations {
				out = append(out, textUses(where+" "+k, v)...)
			}
		}
	}
	return out
}

// ruleTestUses reads the names of the input series: a test that feeds a
// misspelt series tests nothing.
func ruleTestUses(t testing.TB, path string) []use {
	t.Helper()
	var f struct {
		Tests []struct {
			Name        string `yaml:"name"`
			InputSeries []struct {
				Series string `yaml:"series"`
			} `yaml:"input_series"`
		} `yaml:"tests"`
	}
	readYAML(t, path, &f)
	var out []use
	for _, tc := range f.Tests {
		for _, s := range tc.InputSeries {
			out = append(out, exprUses(fmt.Sprintf("%s: %q", path, tc.Name), s.Series)...)
		}
	}
	return out
}

// dashboardUses walks the whole dashboard: queries in panel targets and
// template variables, names mentioned in titles and descriptions.
func dashboardUses(t testing.TB, path string) []use {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []use
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = path + ": " + title
			}
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					out = append(out, exprUses(where, s)...)
					continue
				}
				walk(x, where)
			}
		case []any:
			for _, x := range v {
				walk(x, where)
			}
		case string:
			out = append(out, textUses(where, v)...)
		}
	}
	walk(doc, path)
	return out
}

func readYAML(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var (
	metricName = regexp.MustCompile(`\brelay_[a-zA-Z0-9_]+`)
	// PromQL strings: label values, not metric names.
	promQLString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'` + "|`[^`]*`")
)

// exprUses returns the relay_* names of a PromQL expression or series
// selector.
func exprUses(where, expr string) []use {
	return textUses(where, promQLString.ReplaceAllString(expr, `""`))
}

// textUses returns the relay_* words of free text.
func textUses(where, text string) []use {
	var out []use
	for _, n := range metricName.FindAllString(text, -1) {
		out = append(out, use{where: where, name: n})
	}
	return out
}

func distinct(uses []use) []string {
	var names []string
	for _, u := range uses {
		names = append(names, u.name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// histogramSeries are the series a histogram or summary adds to its name.
var histogramSeries = []string{"_bucket", "_sum", "_count"}

// unknown returns one sorted line per use of a name that relay does not
// export. A name ending in _bucket, _sum or _count is one series of the
// histogram or summary without that suffix.
func unknown(uses []use, exported map[string]string) []string {
	var out []string
	for _, u := range uses {
		if _, ok := exported[u.name]; ok {
			continue
		}
		problem := u.name + " is not a metric relay exports"
		for _, suffix := range histogramSeries {
			base, ok := strings.CutSuffix(u.name, suffix)
			if !ok {
				continue
			}
			switch typ, ok := exported[base]; {
			case !ok:
			case typ == "HISTOGRAM" || typ == "SUMMARY":
				problem = ""
			case typ == "":
				problem = fmt.Sprintf("%s: %s has no series yet, so whether it is a histogram is unknown: pre-initialise it", u.name, base)
			}
		}
		if problem != "" {
			out = append(out, u.where+": "+problem)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
