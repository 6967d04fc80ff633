package render

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // tz tests must not depend on the machine's zone files

	"github.com/skype-relay/relay/relay"
)

// renderSource renders src, a user template file, on d.
func renderSource(t *testing.T, src string, d Data) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.tmpl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t, Options{Files: map[string]string{"t": path}})
	return e.Render("t", d)
}

func TestFuncs(t *testing.T) {
	t.Parallel()
	a := cpuAlert(1)
	a.Labels["bytes"] = "1048576"
	a.Labels["note"] = "  spaced  "
	a.Labels["url"] = "a%20b%2Fc"
	d := NewData(message([]string{"alertname"}, a), "r", "c")

	tests := []struct {
		name, src, want string
	}{
		{"toUpper", `{{ "héllo" | toUpper }}`, "HÉLLO"},
		{"toLower", `{{ "HÉLLO" | toLower }}`, "héllo"},
		{"title", `{{ "hIGH cpu on node-exporter's box_one" | title }}`, "High Cpu On Node-Exporter's Box_one"},
		{"trimSpace", `[{{ (index .CommonLabels "note") | trimSpace }}]`, "[spaced]"},
		{"join pipeline", `{{ .GroupLabels.Names | join "," }}`, "alertname"},
		{"join values", `{{ join " / " (stringSlice "a" "b" "c") }}`, "a / b / c"},
		{"match true", `{{ match "^web-[0-9]+" (index .CommonLabels "instance") }}`, "true"},
		{"match unanchored", `{{ match "CP" "HighCPU" }}`, "true"},
		{"match false", `{{ match "^db" "web-1" }}`, "false"},
		{"reReplaceAll", `{{ reReplaceAll ":[0-9]+$" "" (index .CommonLabels "instance") }}`, "web-1"},
		{"reReplaceAll groups", `{{ reReplaceAll "(\\w+)-(\\d+)" "$2-$1" "web-7" }}`, "7-web"},
		{"safeHtml identity", `{{ "<b>x</b>" | safeHtml }}`, "<b>x</b>"},
		{"safeUrl identity", `{{ "http://x/?a=<b>" | safeUrl }}`, "http://x/?a=<b>"},
		{"urlUnescape", `{{ urlUnescape (index .CommonLabels "url") }}`, "a b/c"},
		{"date", `{{ (index .Alerts 0).StartsAt | date "2006-01-02T15:04" }}`, "2026-11-27T03:02"},
		{"tz then date", `{{ (index .Alerts 0).StartsAt | tz "Europe/Berlin" | date "15:04 MST" }}`, "04:02 CET"},
		{"since", `{{ since (index .Alerts 0).StartsAt }}`, "1h30m0s"},
		{"since humanized", `{{ since (index .Alerts 0).StartsAt | humanizeDuration }}`, "1h 30m 0s"},
		{"humanize big", `{{ humanize 1234567 }}`, "1.235M"},
		{"humanize small", `{{ humanize 0.0012 }}`, "1.2m"},
		{"humanize zero", `{{ humanize 0 }}`, "0"},
		{"humanize one", `{{ humanize 1 }}`, "1"},
		{"humanize string", `{{ humanize "2048" }}`, "2.048k"},
		{"humanize negative", `{{ humanize -1500 }}`, "-1.5k"},
		{"humanize NaN", `{{ humanize "NaN" }}`, "NaN"},
		{"humanize1024", `{{ index .CommonLabels "bytes" | humanize1024 }}`, "1Mi"},
		{"humanize1024 small", `{{ humanize1024 0.5 }}`, "0.5"},
		{"humanize1024 kibi", `{{ humanize1024 1536 }}`, "1.5ki"},
		{"humanizeDuration days", `{{ humanizeDuration 93784 }}`, "1d 2h 3m 4s"},
		{"humanizeDuration hours", `{{ humanizeDuration 3600 }}`, "1h 0m 0s"},
		{"humanizeDuration minutes", `{{ humanizeDuration 61 }}`, "1m 1s"},
		{"humanizeDuration seconds", `{{ humanizeDuration 1.5 }}`, "1.5s"},
		{"humanizeDuration millis", `{{ humanizeDuration 0.25 }}`, "250ms"},
		{"humanizeDuration zero", `{{ humanizeDuration 0 }}`, "0s"},
		{"humanizeDuration negative", `{{ humanizeDuration -65 }}`, "-1m 5s"},
		{"humanizeDuration string", `{{ humanizeDuration "90" }}`, "1m 30s"},
		{"humanizePercentage", `{{ humanizePercentage 0.1234 }}`, "12.34%"},
		{"humanizePercentage string", `{{ humanizePercentage "1" }}`, "100%"},
		{"humanizeTimestamp", `{{ humanizeTimestamp 1435065584.128 }}`, "2015-06-23 13:19:44.128 +0000 UTC"},
		{"humanizeTimestamp time", `{{ humanizeTimestamp (index .Alerts 0).StartsAt }}`, "2026-11-27 03:02:05 +0000 UTC"},
		{"toJson", `{{ toJson .GroupLabels }}`, `{"alertname":"HighCPU"}`},
		{"toJson string", `{{ toJson "a\"b" }}`, `"a\"b"`},
		{"stringSlice len", `{{ len (stringSlice "a" "b") }}`, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := renderSource(t, tt.src, d)
			if err != nil {
				t.Fatalf("Render(%q): %v", tt.src, err)
			}
			if got != tt.want {
				t.Errorf("Render(%q) = %q, want %q", tt.src, got, tt.want)
			}
		})
	}
}

func TestFuncErrors(t *testing.T) {
	t.Parallel()
	d := NewData(message(nil, cpuAlert(1)), "r", "c")
	tests := []struct {
		name, src, wantErr string
	}{
		{"bad regexp in match", `{{ match "(" "x" }}`, "missing closing )"},
		{"bad regexp in reReplaceAll", `{{ reReplaceAll "[" "" "x" }}`, "missing closing ]"},
		{"unknown zone", `{{ (index .Alerts 0).StartsAt | tz "Mars/Olympus" }}`, "Mars/Olympus"},
		{"not a number", `{{ humanize "many" }}`, `"many" is not a number`},
		{"not a number type", `{{ humanizeDuration .GroupLabels }}`, "cannot use alertmanager.KV as a number"},
		{"bad escape", `{{ urlUnescape "%zz" }}`, "invalid URL escape"},
		{"timestamp out of range", `{{ humanizeTimestamp 1e300 }}`, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := renderSource(t, tt.src, d)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Render(%q) error = %v, want it to contain %q", tt.src, err, tt.wantErr)
			}
			if !errors.Is(err, relay.ErrInvalid) {
				t.Errorf("Render(%q) error = %v, want it to wrap relay.ErrInvalid", tt.src, err)
			}
		})
	}
}

func TestTitle(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"a", "A"},
		{"hello world", "Hello World"},
		{"HELLO", "Hello"},
		{"élan vital", "Élan Vital"},
		{"x1 2y", "X1 2y"},
		{"  two  spaces ", "  Two  Spaces "},
	}
	for _, tt := range tests {
		if got := title(tt.in); got != tt.want {
			t.Errorf("title(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDataHelpers(t *testing.T) {
	t.Parallel()
	m := message([]string{"alertname"}, cpuAlert(1), cpuAlert(2))
	m.ExternalURL = "http://am.example/"
	d := NewData(m, "r", "c")

	if got, want := d.AlertsURL(), `http://am.example/#/alerts?receiver=oncall&filter=%7Balertname%3D%22HighCPU%22%7D`; got != want {
		t.Errorf("AlertsURL() = %q, want %q", got, want)
	}
	if got, want := d.SilenceURL(), "http://am.example/#/silences/new?filter="; !strings.HasPrefix(got, want) {
		t.Errorf("SilenceURL() = %q, want prefix %q", got, want)
	}
	items := d.GroupAlerts()
	if len(items) != 2 || items[1].Group != &d {
		t.Fatalf("GroupAlerts() = %d items, want 2 pointing at the data", len(items))
	}
	if got, want := items[0].ExtraLabels().String(), "instance=web-1:9100"; got != want {
		t.Errorf("ExtraLabels() = %q, want %q", got, want)
	}
	// The description is common to both alerts: shown once for the group.
	if got := items[0].Annotation("description"); got != "" {
		t.Errorf(`Annotation("description") = %q, want "" (common to the group)`, got)
	}
	if got, want := items[0].Annotation("summary"), "CPU above 90% on web-1"; got != want {
		t.Errorf(`Annotation("summary") = %q, want %q`, got, want)
	}

	single := NewData(message(nil, cpuAlert(1)), "r", "c")
	if got := single.GroupAlerts()[0].Annotation("description"); got == "" {
		t.Error(`Annotation("description") of a lone alert is empty, want its description`)
	}
	single.ExternalURL = ""
	if single.AlertsURL() != "" || single.SilenceURL() != "" {
		t.Errorf("AlertsURL(), SilenceURL() = %q, %q without ExternalURL, want empty", single.AlertsURL(), single.SilenceURL())
	}
}

func TestNewData(t *testing.T) {
	t.Parallel()
	m := message([]string{"alertname"}, cpuAlert(1), resolved(cpuAlert(2), time.Minute))
	m.TruncatedAlerts = 3
	d := NewData(m, "route-a", "conv-b")
	if d.Receiver != m.Receiver || d.Status != m.Status || d.GroupKey != m.GroupKey ||
		d.ExternalURL != m.ExternalURL || d.TruncatedAlerts != 3 || d.Route != "route-a" || d.Conversation != "conv-b" {
		t.Errorf("NewData() = %+v, fields do not match the message", d)
	}
	if len(d.Alerts) != 2 || len(d.AllAlerts) != 2 || len(d.Alerts.Firing()) != 1 || len(d.Alerts.Resolved()) != 1 {
		t.Errorf("NewData() alerts = %d, all = %d, want 2 and 2 (1 firing, 1 resolved)", len(d.Alerts), len(d.AllAlerts))
	}
}
