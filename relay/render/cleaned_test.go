package render

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/source/generic"
	"github.com/skype-relay/relay/relay/source/github"
	"github.com/skype-relay/relay/relay/source/gitlab"
)

// The hostile values of issue #13, each with what its cleaned form
// contains. hostileURL is the link that must not get through.
const (
	forged     = "api-1\n[RESOLVED:1] AllGood"
	rlo        = "evil\u202egnp.exe"
	bel        = "ding\a"
	esc        = "\x1b[31mred"
	bareCR     = "over\rwritten"
	separators = "a\u2028b\u2029c"
	hostileURL = "javascript:alert(1)"
)

var hostileLines = map[string]string{
	forged:     "api-1<U+000A>[RESOLVED:1] AllGood",
	rlo:        "evil<U+202E>gnp.exe",
	bel:        "ding<U+0007>",
	esc:        "<U+001B>[31mred",
	bareCR:     "over<U+000D>written",
	separators: "a<U+2028>b<U+2029>c",
}

// allowed reports whether the rendered text s holds no forbidden code
// point other than line feed and tab, and names the first one otherwise.
func allowed(s string) (rune, bool) {
	for _, r := range s {
		if clean.Forbidden(r) && r != '\n' && r != '\t' {
			return r, false
		}
	}
	return 0, true
}

// checkCleanText fails when text holds a forbidden code point, a line
// forged by a value, or the hostile link.
func checkCleanText(t *testing.T, what, text string) {
	t.Helper()
	if r, ok := allowed(text); !ok {
		t.Errorf("%s holds %U:\n%s", what, r, text)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "[RESOLVED:1] AllGood") {
			t.Errorf("%s has a line forged by a value:\n%s", what, text)
		}
	}
	if strings.Contains(text, hostileURL) {
		t.Errorf("%s shows %q:\n%s", what, hostileURL, text)
	}
}

// hostileMessage is a notification with a hostile value in every field
// the shipped template shows.
func hostileMessage() *alertmanager.Message {
	a := alert("alertname=Hostile"+bel, "instance="+forged, "job="+rlo, "zone="+esc)
	a = annotate(a, "summary", "CPU "+separators, "description", "line one\nline two "+bareCR, "runbook_url", hostileURL)
	a.GeneratorURL = hostileURL
	b := alert("alertname=Hostile"+bel, "instance=web-2", "job="+rlo, "zone="+esc)
	b = annotate(b, "summary", "fine")
	m := message([]string{"job"}, a, b)
	m.Receiver = forged
	m.ExternalURL = hostileURL
	return m
}

func TestAlertmanagerHostileValues(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})
	native, interp := interpreted(t, e)
	d := NewData(hostileMessage(), "r", "c")
	sameText(t, native, interp, d, "hostile notification")
	got, err := e.Render("alertmanager", d)
	if err != nil {
		t.Fatal(err)
	}
	checkCleanText(t, "Render", got)
	for _, want := range []string{
		"[FIRING:2] evil<U+202E>gnp.exe (alertname=Hostileding<U+0007>, zone=<U+001B>[31mred)",
		"* instance=api-1<U+000A>[RESOLVED:1] AllGood",
		"CPU a<U+2028>b<U+2029>c",
		"line one\nline two over<U+000D>written",
		"Source: " + clean.RemovedLink,
		"Runbook: " + clean.RemovedLink,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Render() lacks %q:\n%s", want, got)
		}
	}
	// A non-http external URL gives no links to build on.
	if strings.Contains(got, "Alerts:") || strings.Contains(got, "Silence:") {
		t.Errorf("Render() links to a non-http Alertmanager:\n%s", got)
	}
	// The caller's data is left as it was.
	if d.Alerts[0].Labels["instance"] != forged || d.Receiver != forged {
		t.Errorf("Render changed its argument: %+v", d.Alerts[0].Labels)
	}
}

// TestCleanedKeepsCleanData: a notification that needs no cleaning is not
// copied, and a cleaned view is not cleaned again.
func TestCleanedKeepsCleanData(t *testing.T) {
	d := benchData()
	v := d.cleaned()
	if !sameAlerts(v.Alerts, d.Alerts) || !sameAlerts(v.AllAlerts, d.AllAlerts) {
		t.Error("cleaned() copied alerts that needed nothing")
	}
	if v.Raw() != &d || d.Raw() != &d {
		t.Error("Raw() does not lead back to the data given")
	}
	if v.cleaned() != v {
		t.Error("cleaned() of a view made another view")
	}
	if n := testing.AllocsPerRun(50, func() { _ = d.cleaned() }); n > 1 {
		t.Errorf("cleaning clean data allocates %v times, want 1 (the view)", n)
	}
}

func TestCleanKVNameCollision(t *testing.T) {
	t.Parallel()
	// Both names clean to "a<U+0007>"; the one written that way wins,
	// whatever the map order.
	for range 20 {
		got, changed := cleanKV(alertmanager.KV{"a\a": "bell", "a<U+0007>": "text", "b\n": "x\ny"}, false)
		want := alertmanager.KV{"a<U+0007>": "text", "b<U+000A>": "x<U+000A>y"}
		if !changed || !reflect.DeepEqual(got, want) {
			t.Fatalf("cleanKV() = %q, %v; want %q, true", got, changed, want)
		}
	}
}

func TestRawFunction(t *testing.T) {
	t.Parallel()
	m := message([]string{"alertname"}, alert("alertname=X", "instance="+forged, "job="+rlo))
	d := NewData(m, "r", "c")
	tests := []struct{ name, src, want string }{
		{"cleaned by default", `{{ .CommonLabels.instance }}`, hostileLines[forged]},
		{"raw dot", `{{ (raw .).CommonLabels.instance }}`, forged},
		{"raw with", `{{ with raw . }}{{ .CommonLabels.job }}{{ end }}`, rlo},
		{"raw alert", `{{ range .GroupAlerts }}{{ (raw .).Labels.instance }}|{{ .Labels.instance }}{{ end }}`,
			forged + "|" + hostileLines[forged]},
		{"raw of raw", `{{ (raw (raw .)).CommonLabels.job }}`, rlo},
		{"oneLine", `{{ oneLine (raw .).CommonLabels.instance }}`, hostileLines[forged]},
		{"urlUnescape cleans", `{{ urlUnescape "a%0Ab%E2%80%AE" }}`, "a<U+000A>b<U+202E>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := renderSource(t, tt.src, d)
			if err != nil || got != tt.want {
				t.Errorf("Render(%s) = %q, %v; want %q", tt.src, got, err, tt.want)
			}
		})
	}
	_, err := renderSource(t, `{{ raw .CommonLabels }}`, d)
	if !errors.Is(err, relay.ErrInvalid) || !strings.Contains(err.Error(), "raw takes the template's dot") {
		t.Errorf("raw on a map: error %v, want one explaining raw", err)
	}
}

// TestRawInSplitParts: in each part of a split message, raw shows that
// part's alerts, as the cleaned data does.
func TestRawInSplitParts(t *testing.T) {
	t.Parallel()
	var alerts []alertmanager.Alert
	for i := range 40 {
		alerts = append(alerts, alert("alertname=X", "instance=web-"+strings.Repeat("x", i%7)+"\a"))
	}
	e := newTestEngine(t, Options{MaxBytes: MinMaxBytes, Files: map[string]string{
		"t": writeFile(t, "t.tmpl", `{{ range .Alerts }}{{ .Labels.instance }}/{{ end }}
{{ range (raw .).Alerts }}{{ .Labels.instance }}/{{ end }}`),
	}})
	parts, err := e.RenderParts("t", NewData(message(nil, alerts...), "r", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 2 {
		t.Fatalf("RenderParts() = %d parts, want a split", len(parts))
	}
	for k, p := range parts {
		lines := strings.SplitN(p, "\n", 2)
		if len(lines) != 2 {
			t.Fatalf("part %d = %q, want two lines", k, p)
		}
		_, cleaned, _ := strings.Cut(lines[0], ") ") // drop "(k/n) "
		if want := strings.ReplaceAll(lines[1], "\a", "<U+0007>"); cleaned != want {
			t.Errorf("part %d shows %q cleaned but %q raw", k, cleaned, lines[1])
		}
	}
}

// TestSourceDataCleaned fills every string field of each source's Data
// with a hostile value and checks that Clean leaves no forbidden code
// point in any of them, and that links are links: a field added to a Data
// without cleaning fails here.
func TestSourceDataCleaned(t *testing.T) {
	t.Parallel()
	for _, d := range []interface {
		Clean() any
		Raw() any
	}{&github.Data{}, &gitlab.Data{}, &generic.Data{}} {
		fillStrings(reflect.ValueOf(d).Elem(), func(string) string { return forged + rlo + hostileURL })
		if g, ok := d.(*generic.Data); ok {
			g.Payload = map[string]any{"title\n": forged, "url": hostileURL, "n": map[string]any{"k\u202e": []any{rlo, bel}}}
		}
		c := d.Clean()
		if c.(interface{ Raw() any }).Raw() != d {
			t.Errorf("%T: Raw of the cleaned copy is not the original", d)
		}
		walkStrings(reflect.ValueOf(c), "", func(path, s string) {
			if strings.HasSuffix(path, ".Route") {
				return // from the configuration
			}
			multiline := strings.Contains(path, ".Payload")
			for _, r := range s {
				if clean.Forbidden(r) && !(multiline && (r == '\n' || r == '\t')) {
					t.Errorf("%T: cleaned %s = %q holds %U", d, path, s, r)
					return
				}
			}
			if strings.HasSuffix(strings.ToLower(path), "url") && s != clean.RemovedLink {
				t.Errorf("%T: cleaned %s = %q, want %q", d, path, s, clean.RemovedLink)
			}
		})
	}
}

// fillStrings sets every settable string in v (structs, pointers to
// structs, slices of structs, followed) to value(field name). Nil
// pointers get a new value, nil slices two elements.
func fillStrings(v reflect.Value, value func(field string) string) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillStrings(v.Elem(), value)
	case reflect.Slice:
		if v.IsNil() && v.Type().Elem().Kind() == reflect.Struct {
			v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		}
		for i := range v.Len() {
			fillStrings(v.Index(i), value)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Type.Kind() == reflect.String {
				v.Field(i).SetString(value(f.Name))
			} else {
				fillStrings(v.Field(i), value)
			}
		}
	}
}

// walkStrings calls fn with every string reachable from v through
// exported fields, pointers, slices, maps (keys too) and interfaces.
func walkStrings(v reflect.Value, path string, fn func(path, s string)) {
	switch v.Kind() {
	case reflect.String:
		fn(path, v.String())
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStrings(v.Elem(), path, fn)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkStrings(v.Index(i), path+"[]", fn)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			walkStrings(it.Key(), path+".key", fn)
			walkStrings(it.Value(), path+"."+it.Key().String(), fn)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				walkStrings(v.Field(i), path+"."+f.Name, fn)
			}
		}
	}
}

// TestValueTemplatesHostile renders each source's Data, every string
// field hostile, with its shipped template.
func TestValueTemplatesHostile(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})
	values := []string{forged, rlo, bel, esc, bareCR, separators}
	for _, tt := range []struct {
		template string
		data     any
	}{
		{"github", &github.Data{RunNumber: 7, RunAttempt: 2}},
		{"gitlab", &gitlab.Data{PipelineID: 9}},
		{"gitlab", &gitlab.Data{PipelineID: 9, Job: &gitlab.Job{}}},
	} {
		i := 0
		fillStrings(reflect.ValueOf(tt.data).Elem(), func(field string) string {
			if strings.HasSuffix(field, "URL") {
				return hostileURL
			}
			i++
			return values[i%len(values)]
		})
		got, err := e.RenderValue(tt.template, tt.data)
		if err != nil {
			t.Fatalf("RenderValue(%s): %v", tt.template, err)
		}
		checkCleanText(t, tt.template, got)
		if !strings.Contains(got, clean.RemovedLink) || !utf8.ValidString(got) {
			t.Errorf("%s: no removed-link marker in:\n%s", tt.template, got)
		}
	}
	got, err := e.RenderValue("generic", &generic.Data{Route: "r", Payload: map[string]any{
		"title": forged, "status": rlo, "message": "two\nlines " + bel + esc + bareCR, "url": hostileURL,
	}})
	if err != nil {
		t.Fatal(err)
	}
	checkCleanText(t, "generic", got)
	want := "[EVIL<U+202E>GNP.EXE] api-1<U+000A>[RESOLVED:1] AllGood\ntwo\nlines ding<U+0007><U+001B>[31mredover<U+000D>written\n" + clean.RemovedLink
	if got != want {
		t.Errorf("RenderValue(generic) = %q, want %q", got, want)
	}
	got, err = e.RenderValue("generic", &generic.Data{Route: "r", Payload: map[string]any{"a\nb": forged, "c": separators}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Webhook on route r\na<U+000A>b: api-1<U+000A>[RESOLVED:1] AllGood\nc: a<U+2028>b<U+2029>c"; got != want {
		t.Errorf("RenderValue(generic fields) = %q, want %q", got, want)
	}
}
