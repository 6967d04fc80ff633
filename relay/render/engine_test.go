package render

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/alertmanager"
)

// writeFile writes a template file into a fresh directory and returns its
// path.
func writeFile(t *testing.T, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUserFileOverridesBlock(t *testing.T) {
	t.Parallel()
	berlin := writeFile(t, "berlin.tmpl", `{{ define "alertmanager.time" }}{{ . | tz "Europe/Berlin" | date "Mon 15:04 MST" }}{{ end }}`)
	own := writeFile(t, "own.tmpl", `{{ .Status | toUpper }} {{ len .Alerts }} alert(s) via {{ .Route }} to {{ .Conversation }}
{{ template "alertmanager.title" . }}`)
	e := newTestEngine(t, Options{Files: map[string]string{"berlin": berlin, own: own}})
	d := NewData(message([]string{"alertname"}, cpuAlert(1)), "route-a", "ops")

	got, err := e.Render("berlin", d)
	if err != nil {
		t.Fatalf(`Render("berlin"): %v`, err)
	}
	if !strings.Contains(got, "Since Fri 04:02 CET") || !strings.HasPrefix(got, "[FIRING:1] HighCPU") {
		t.Errorf("Render(\"berlin\") = %q, want the default layout with Berlin time \"Since Fri 04:02 CET\"", got)
	}

	// The override lives in the file's own set: the shipped template is unchanged.
	def, err := e.Render("alertmanager", d)
	if err != nil {
		t.Fatalf(`Render("alertmanager"): %v`, err)
	}
	if !strings.Contains(def, "Since 2026-11-27 03:02 UTC") {
		t.Errorf(`Render("alertmanager") = %q, want UTC time; an override leaked into the shipped set`, def)
	}

	// A file with a body of its own renders that body; its name may be the path.
	got, err = e.Render(own, d)
	if err != nil {
		t.Fatalf("Render(%q): %v", own, err)
	}
	want := "FIRING 1 alert(s) via route-a to ops\n[FIRING:1] HighCPU (env=prod, instance=web-1:9100, job=node, severity=critical)"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Render(%q) mismatch (-want +got):\n%s", own, diff)
	}

	if diff := cmp.Diff([]string{own, "alertmanager", "berlin", "generic", "github", "gitlab"}, e.Names()); diff != "" {
		t.Errorf("Names() mismatch (-want +got):\n%s", diff)
	}
	for name, want := range map[string]bool{"alertmanager": true, "berlin": true, own: true, "alertmanager.alert": false, "nope": false} {
		if got := e.Has(name); got != want {
			t.Errorf("Has(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	syntax := writeFile(t, "syntax.tmpl", "line one\n{{ if .Status }}\nno end\n")
	unknownFunc := writeFile(t, "func.tmpl", "ok\nok\n{{ nosuch .Status }}\n")
	big := writeFile(t, "big.tmpl", strings.Repeat("x", maxFileBytes+1))
	tests := []struct {
		name    string
		opts    Options
		wantErr []string
	}{
		{"syntax error names file and line", Options{Files: map[string]string{"s": syntax}}, []string{`load template "s"`, syntax + ":4:", "unexpected EOF"}},
		{"unknown function names file and line", Options{Files: map[string]string{"f": unknownFunc}}, []string{unknownFunc + ":3:", `"nosuch" not defined`}},
		{"missing file", Options{Files: map[string]string{"m": "/nonexistent/x.tmpl"}}, []string{`load template "m"`, "/nonexistent/x.tmpl"}},
		{"file too large", Options{Files: map[string]string{"b": big}}, []string{big, "larger than"}},
		{"shipped name taken", Options{Files: map[string]string{"alertmanager": syntax}}, []string{"taken by a shipped template"}},
		{"MaxBytes too small", Options{MaxBytes: 100}, []string{"MaxBytes is 100"}},
		{"MaxParts negative", Options{MaxParts: -1}, []string{"MaxParts is -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.opts)
			if err == nil {
				t.Fatalf("New(%+v) = nil error, want one", tt.opts)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestExecErrorNamesFileAndLine(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "bad.tmpl", "{{ define \"alertmanager.alert\" }}\nfine\n{{ .NoSuchField }}{{ end }}")
	e := newTestEngine(t, Options{Files: map[string]string{"bad": path}})
	_, err := e.Render("bad", NewData(message(nil, cpuAlert(1)), "r", "c"))
	if err == nil {
		t.Fatal(`Render("bad") = nil error, want one`)
	}
	if !errors.Is(err, relay.ErrInvalid) {
		t.Errorf("Render() error = %v, want it to wrap relay.ErrInvalid", err)
	}
	for _, w := range []string{`render template "bad"`, path + ":3:", "NoSuchField"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Render() error = %q, want it to contain %q", err, w)
		}
	}
}

func TestMissingKey(t *testing.T) {
	t.Parallel()
	// Shipped templates run with missingkey=error, so a typo in ours fails
	// loudly in tests instead of rendering blanks.
	shipped := fstest.MapFS{
		"x.tmpl":       {Data: []byte(`{{ define "strict" }}[{{ .CommonLabels.nosuch }}]{{ end }}`)},
		"generic.tmpl": {Data: []byte(`{{ define "generic" }}[{{ with .nosuch }}x{{ end }}]{{ end }}`)},
	}
	user := writeFile(t, "user.tmpl", `[{{ .CommonLabels.nosuch }}]`)
	e, err := newEngine(shipped, Options{Files: map[string]string{"user": user}}, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	d := NewData(message(nil, cpuAlert(1)), "r", "c")

	_, err = e.Render("strict", d)
	if err == nil || !strings.Contains(err.Error(), `map has no entry for key "nosuch"`) || !errors.Is(err, relay.ErrInvalid) {
		t.Errorf(`Render("strict") error = %v, want a missing key error wrapping relay.ErrInvalid`, err)
	}

	// The generic template reads payloads nobody declared: a missing key
	// is empty there, without making the other shipped templates lenient.
	if got, err := e.RenderValue("generic", map[string]any{}); err != nil || got != "[]" {
		t.Errorf(`RenderValue("generic") = %q, %v, want "[]", nil`, got, err)
	}

	// User templates read a missing label as "", as in Alertmanager.
	got, err := e.Render("user", d)
	if err != nil || got != "[]" {
		t.Errorf(`Render("user") = %q, %v, want "[]", nil`, got, err)
	}
}

func TestUnknownTemplate(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})
	d := NewData(message(nil, cpuAlert(1)), "r", "c")
	if _, err := e.Render("nope", d); !errors.Is(err, ErrUnknownTemplate) || errors.Is(err, relay.ErrInvalid) {
		t.Errorf(`Render("nope") error = %v, want ErrUnknownTemplate only`, err)
	}
	if _, err := e.RenderParts("nope", d); !errors.Is(err, ErrUnknownTemplate) {
		t.Errorf(`RenderParts("nope") error = %v, want ErrUnknownTemplate`, err)
	}
}

func TestOutputCap(t *testing.T) {
	t.Parallel()
	// Each template would write 20 × 20 × 60 KiB = 24 MiB.
	perAlert := writeFile(t, "per_alert.tmpl", `{{ range .Alerts }}{{ range $.Alerts }}{{ .Labels.big }}{{ end }}{{ end }}`)
	whole := writeFile(t, "whole.tmpl", `{{ range .AllAlerts }}{{ range $.AllAlerts }}{{ .Labels.big }}{{ end }}{{ end }}`)
	e := newTestEngine(t, Options{Files: map[string]string{"per_alert": perAlert, "whole": whole}})
	var alerts []alertmanager.Alert
	for i := range 20 {
		a := cpuAlert(i)
		a.Labels["big"] = strings.Repeat("x", 60<<10)
		alerts = append(alerts, a)
	}
	d := NewData(message(nil, alerts...), "r", "c")

	for _, name := range []string{"per_alert", "whole"} {
		_, err := e.Render(name, d)
		if !errors.Is(err, ErrTooLarge) || !errors.Is(err, relay.ErrInvalid) {
			t.Errorf("Render(%q) error = %v, want ErrTooLarge and relay.ErrInvalid", name, err)
		}
	}

	// Rendered one alert at a time, "per_alert" fits the output cap, so
	// RenderParts sends what fits in MaxParts messages and counts the rest.
	parts, err := e.RenderParts("per_alert", d)
	if err != nil {
		t.Fatalf(`RenderParts("per_alert"): %v`, err)
	}
	if len(parts) != DefaultMaxParts {
		t.Errorf(`RenderParts("per_alert") = %d parts, want %d`, len(parts), DefaultMaxParts)
	}
	// 60 KiB of one alert fill 8 parts of 8 KiB; the second alert is cut
	// in parts 9 and 10; the other 18 never start.
	last := parts[len(parts)-1]
	if !strings.HasSuffix(last, "[message cut: too long]\n+18 more alerts not shown") {
		t.Errorf(`RenderParts("per_alert") last part ends %q, want a cut note and "+18 more alerts not shown"`, last[max(0, len(last)-80):])
	}

	// "whole" writes every alert whatever the part: no split can help.
	if _, err := e.RenderParts("whole", d); !errors.Is(err, ErrTooLarge) || !errors.Is(err, relay.ErrInvalid) {
		t.Errorf(`RenderParts("whole") error = %v, want ErrTooLarge and relay.ErrInvalid`, err)
	}
}

func TestInvalidUTF8Replaced(t *testing.T) {
	t.Parallel()
	got, err := renderSource(t, `a{{ slice "é" 1 }}b`, NewData(message(nil, cpuAlert(1)), "r", "c"))
	if err != nil || got != "a\uFFFDb" {
		t.Errorf("Render() = %q, %v, want %q, nil", got, err, "a\uFFFDb")
	}
}

func TestTidy(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"\n\n  \n", ""},
		{"a", "a"},
		{"a  \t\nb\t\n", "a\nb"},
		{"\n\na\n\n\n\nb\n\n", "a\n\nb"},
		{"a\r\n\r\nb", "a\n\nb"},
		{"  indented\n   \n\n  kept", "  indented\n\n  kept"},
	}
	for _, tt := range tests {
		if got := tidy([]byte(tt.in)); got != tt.want {
			t.Errorf("tidy(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestConcurrentRender(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "berlin.tmpl", `{{ define "alertmanager.time" }}{{ . | tz "Europe/Berlin" | date "15:04" }}{{ end }}`)
	e := newTestEngine(t, Options{Files: map[string]string{"berlin": path}, MaxBytes: 512})
	d := NewData(message([]string{"alertname"}, cpuAlert(1), cpuAlert(2), cpuAlert(3), cpuAlert(4)), "r", "c")
	want, err := e.RenderParts("berlin", d)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 50 {
				got, err := e.RenderParts("berlin", d)
				if err == nil && !cmp.Equal(got, want) {
					err = errors.New("concurrent RenderParts differs from a lone one")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestUsesConversation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.tmpl")
	per := filepath.Join(dir, "per.tmpl")
	if err := os.WriteFile(plain, []byte(`{{ .Status }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(per, []byte(`{{ define "alertmanager.title" }}to {{ .Conversation }}{{ end }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Files: map[string]string{"plain": plain, "per": per}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"alertmanager": false, "plain": false, "per": true, "missing": true} {
		if got := e.UsesConversation(name); got != want {
			t.Errorf("UsesConversation(%q) = %v, want %v", name, got, want)
		}
	}
}
