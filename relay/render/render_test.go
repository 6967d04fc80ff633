package render

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/templates"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// t0 is the start of every test alert.
var t0 = time.Date(2026, 11, 27, 3, 2, 5, 0, time.UTC)

// fixedNow is the clock of test engines.
func fixedNow() time.Time { return t0.Add(90 * time.Minute) }

// newTestEngine builds an engine over the shipped templates with a fixed
// clock.
func newTestEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := newEngine(templates.FS, opts, fixedNow)
	if err != nil {
		t.Fatalf("newEngine: %v", err)
	}
	return e
}

// alert builds a firing alert from label pairs "k=v".
func alert(labels ...string) alertmanager.Alert {
	a := alertmanager.Alert{
		Status:       alertmanager.StatusFiring,
		Labels:       alertmanager.KV{},
		Annotations:  alertmanager.KV{},
		StartsAt:     t0,
		GeneratorURL: "http://prometheus.example:9090/graph?g0.expr=cpu",
	}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		a.Labels[k] = v
	}
	a.Fingerprint = fmt.Sprintf("%016x", len(a.Labels.SortedPairs().String()))
	return a
}

func resolved(a alertmanager.Alert, after time.Duration) alertmanager.Alert {
	a.Status = alertmanager.StatusResolved
	a.EndsAt = a.StartsAt.Add(after)
	return a
}

func annotate(a alertmanager.Alert, kv ...string) alertmanager.Alert {
	ann := alertmanager.KV{}
	for k, v := range a.Annotations {
		ann[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		ann[kv[i]] = kv[i+1]
	}
	a.Annotations = ann
	return a
}

// message builds a notification grouped by groupBy, deriving status and
// common labels and annotations as Alertmanager does.
func message(groupBy []string, alerts ...alertmanager.Alert) *alertmanager.Message {
	m := &alertmanager.Message{
		Version:           alertmanager.Version,
		GroupKey:          "{}:{alertname=\"HighCPU\"}",
		Receiver:          "oncall",
		Status:            alertmanager.StatusResolved,
		Alerts:            alerts,
		GroupLabels:       alertmanager.KV{},
		CommonLabels:      common(alerts, func(a alertmanager.Alert) alertmanager.KV { return a.Labels }),
		CommonAnnotations: common(alerts, func(a alertmanager.Alert) alertmanager.KV { return a.Annotations }),
		ExternalURL:       "http://alertmanager.example:9093",
	}
	for _, a := range alerts {
		if a.Status == alertmanager.StatusFiring {
			m.Status = alertmanager.StatusFiring
		}
	}
	for _, g := range groupBy {
		if v, ok := m.CommonLabels[g]; ok {
			m.GroupLabels[g] = v
		}
	}
	return m
}

func common(alerts []alertmanager.Alert, kv func(alertmanager.Alert) alertmanager.KV) alertmanager.KV {
	out := alertmanager.KV{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range kv(alerts[0]) {
		out[k] = v
	}
	for _, a := range alerts[1:] {
		for k, v := range out {
			if kv(a)[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// cpuAlert is a realistic node alert for instance web-N.
func cpuAlert(n int) alertmanager.Alert {
	a := alert("alertname=HighCPU", "env=prod", "severity=critical", "job=node",
		fmt.Sprintf("instance=web-%d:9100", n))
	return annotate(a,
		"summary", fmt.Sprintf("CPU above 90%% on web-%d", n),
		"description", "Load has been above 90% for 10 minutes.\nCheck the batch jobs first.",
		"runbook_url", "https://runbooks.example/HighCPU")
}

// checkGolden compares got with testdata/name.golden, or rewrites the file
// under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got), run go test ./relay/render -update if intended:\n%s", path, diff)
	}
}
