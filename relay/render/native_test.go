package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/templates"
)

// interpreted returns the engine's alertmanager entry without its native
// rendering: the template as text/template executes it.
func interpreted(t testing.TB, e *Engine) (native, interp entry) {
	t.Helper()
	native = e.entries[alertmanagerEntry]
	if native.native == nil {
		t.Fatal("the shipped alertmanager entry has no native rendering")
	}
	interp = native
	interp.native = nil
	return native, interp
}

// sameText renders d both ways and fails on any difference, or on a
// forbidden code point in the text.
func sameText(t testing.TB, native, interp entry, d Data, what string) {
	t.Helper()
	want, werr := interp.render(alertmanagerEntry, &d)
	got, gerr := native.render(alertmanagerEntry, &d)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: template error %v, native error %v", what, werr, gerr)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s: native rendering differs from templates/alertmanager.tmpl (-template +native):\n%s", what, diff)
	}
	if r, ok := allowed(got); !ok {
		t.Fatalf("%s: the rendering holds %U:\n%s", what, r, got)
	}
}

func TestNativeOnlyForShippedSet(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})
	if e.entries[alertmanagerEntry].native == nil {
		t.Fatal("shipped alertmanager template renders through the interpreter")
	}
	for name, ent := range e.entries {
		if name != alertmanagerEntry && ent.native != nil {
			t.Errorf("entry %q has a native rendering", name)
		}
	}
	// A file overriding one block must see its override, so it gets the
	// interpreter.
	path := writeFile(t, "unix.tmpl", `{{ define "alertmanager.time" }}{{ .Unix }}{{ end }}`)
	e = newTestEngine(t, Options{Files: map[string]string{"unix": path}})
	if e.entries["unix"].native != nil {
		t.Fatal("an overriding file renders natively")
	}
	m := message([]string{"alertname"}, cpuAlert(1))
	got, err := e.Render("unix", NewData(m, "r", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, fmt.Sprint("Since ", t0.Unix())) {
		t.Fatalf("override not applied:\n%s", got)
	}
	// Other shipped templates (tests) get no native rendering either.
	e2, err := newEngine(templates.FS, Options{}, fixedNow)
	if err != nil || e2.entries[alertmanagerEntry].native == nil {
		t.Fatalf("engine over templates.FS: native missing (err %v)", err)
	}
}

// TestNativeMatchesTemplate renders the golden notifications, the samples
// and thousands of generated ones both ways, whole and as split parts.
func TestNativeMatchesTemplate(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{MaxBytes: 1024})
	native, interp := interpreted(t, e)

	for i, m := range alertmanager.Samples() {
		sameText(t, native, interp, NewData(m, "default", "oncall"), fmt.Sprint("sample ", i))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		m := randomMessage(rng)
		d := NewData(m, "default", "oncall")
		sameText(t, native, interp, d, fmt.Sprintf("generated %d", i))
		if len(m.Alerts) > 1 {
			// A part of a split message: Alerts is a run of AllAlerts.
			lo := rng.IntN(len(m.Alerts))
			d.Alerts = m.Alerts[lo : lo+1+rng.IntN(len(m.Alerts)-lo)]
			sameText(t, native, interp, d, fmt.Sprintf("generated %d, part", i))
		}
	}
	// Whole split output: RenderParts with the native entry against the
	// interpreter entry.
	for i := range 200 {
		m := randomMessage(rng)
		for range 30 {
			m.Alerts = append(m.Alerts, randomAlert(rng))
		}
		d := NewData(m, "default", "oncall")
		want, werr := renderPartsWith(e, interp, d)
		got, gerr := renderPartsWith(e, native, d)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("split %d: template error %v, native error %v", i, werr, gerr)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("split %d differs (-template +native):\n%s", i, diff)
		}
	}
}

// renderPartsWith runs RenderParts with ent as the alertmanager entry.
func renderPartsWith(e *Engine, ent entry, d Data) ([]string, error) {
	c := *e
	c.entries = map[string]entry{alertmanagerEntry: ent}
	return c.RenderParts(alertmanagerEntry, d)
}

// FuzzNativeMatchesTemplate compares the two renderings on any valid
// notification the fuzzer finds.
func FuzzNativeMatchesTemplate(f *testing.F) {
	for _, m := range alertmanager.Samples() {
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	if b, err := json.Marshal(hostileMessage()); err == nil {
		f.Add(b)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		b, err := json.Marshal(randomMessage(rng))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	e := newTestEngine(f, Options{})
	native, interp := interpreted(f, e)
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := alertmanager.Decode(body)
		if err != nil {
			return
		}
		sameText(t, native, interp, NewData(m, "default", "oncall"), "fuzzed notification")
	})
}

// randomMessage builds a notification from a small vocabulary, so labels
// and annotations are often shared (common labels, shared summaries) and
// every branch of the template is taken: empty and odd values, statuses
// Alertmanager never sends, whitespace that tidying has to absorb, zero
// and non-UTC times, and the hostile values and links that cleaning must
// treat alike on both paths.
func randomMessage(rng *rand.Rand) *alertmanager.Message {
	alerts := make([]alertmanager.Alert, rng.IntN(6))
	for i := range alerts {
		alerts[i] = randomAlert(rng)
	}
	m := &alertmanager.Message{
		Version:           alertmanager.Version,
		GroupKey:          "{}:{alertname=\"X\"}",
		Receiver:          pick(rng, "oncall", "", "team ops", "Ünïcode 🙈", "ops\n[RESOLVED:1] AllGood\u202e"),
		Status:            pick(rng, "firing", "resolved", "firing", "", "weird"),
		Alerts:            alerts,
		CommonLabels:      common(alerts, func(a alertmanager.Alert) alertmanager.KV { return a.Labels }),
		CommonAnnotations: common(alerts, func(a alertmanager.Alert) alertmanager.KV { return a.Annotations }),
		ExternalURL:       pick(rng, "http://alertmanager.example:9093", "", "https://am.example/x/", "/", "javascript:x//", "https://am.example/\a"),
		TruncatedAlerts:   rng.IntN(4) - 1,
	}
	if rng.IntN(8) == 0 {
		m.CommonLabels, m.CommonAnnotations = nil, nil
	}
	m.GroupLabels = alertmanager.KV{}
	for k, v := range m.CommonLabels {
		if rng.IntN(2) == 0 {
			m.GroupLabels[k] = v
		}
	}
	if rng.IntN(6) == 0 {
		m.GroupLabels["not_common"] = pick(rng, "", "x")
	}
	if rng.IntN(10) == 0 {
		m.GroupLabels = nil
	}
	return m
}

func randomAlert(rng *rand.Rand) alertmanager.Alert {
	values := []string{"", "a", "prod", "web-1:9100", "x y", "trailing  ", "two\nlines", "\n\nblank\n\n\n",
		"ü—東京 🙈", "=,", "  lead",
		// What cleaning must treat alike on both paths.
		"api-1\n[RESOLVED:1] AllGood", "evil\u202egnp.exe", "\a\x1b[31m", "a\rb\r\n", "\u2028\u2029\u0085",
		"javascript:alert(1)", "https://ok.example/\u200f", "tab\there"}
	a := alertmanager.Alert{
		Status:      pick(rng, "firing", "resolved", "firing", "resolved", "", "pending"),
		Labels:      alertmanager.KV{},
		Annotations: alertmanager.KV{},
		StartsAt: time.Date(2026, 11, 27, rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(2)*500_000_000,
			time.FixedZone("z", 3600*(rng.IntN(5)-2))),
		GeneratorURL: pick(rng, "", "http://prometheus.example:9090/graph?g0.expr=up", "x", "javascript:alert(1)",
			" HTTPS://p.example/\n[RESOLVED:1] AllGood"),
		Fingerprint: fmt.Sprintf("%016x", rng.Uint64()),
	}
	if rng.IntN(10) == 0 {
		a.StartsAt = time.Time{}
	}
	switch rng.IntN(4) {
	case 0:
	case 1:
		a.EndsAt = a.StartsAt.Add(time.Duration(rng.Int64N(int64(50 * time.Hour))))
	case 2:
		a.EndsAt = a.StartsAt.Add(time.Duration(rng.Int64N(int64(2 * time.Second))))
	case 3:
		a.EndsAt = a.StartsAt.Add(-time.Duration(rng.Int64N(int64(time.Hour))))
	}
	for _, k := range []string{"alertname", "env", "instance", "severity", "job", "zone"} {
		if rng.IntN(4) != 0 {
			a.Labels[k] = values[rng.IntN(len(values))]
		}
	}
	for _, k := range []string{"summary", "description", "message", "runbook_url", "other"} {
		if rng.IntN(3) != 0 {
			a.Annotations[k] = values[rng.IntN(len(values))]
		}
	}
	return a
}

func pick(rng *rand.Rand, s ...string) string { return s[rng.IntN(len(s))] }

// TestNativeOutputCap: past MaxOutputBytes both renderings stop with
// ErrTooLarge, and RenderParts still splits the notification the same way.
func TestNativeOutputCap(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})
	native, interp := interpreted(t, e)
	var alerts []alertmanager.Alert
	for i := range 40 {
		alerts = append(alerts, annotate(cpuAlert(i), "summary", fmt.Sprint(i, strings.Repeat(" y", 20<<10))))
	}
	d := NewData(message([]string{"alertname"}, alerts...), "r", "c")
	for name, ent := range map[string]entry{"native": native, "template": interp} {
		if _, err := ent.render(alertmanagerEntry, &d); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s rendering of 1.6 MiB: error %v, want ErrTooLarge", name, err)
		}
	}
	want, werr := renderPartsWith(e, interp, d)
	got, gerr := renderPartsWith(e, native, d)
	if werr != nil || gerr != nil {
		t.Fatalf("RenderParts: template %v, native %v", werr, gerr)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("split parts differ (-template +native):\n%s", diff)
	}
}
