package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay/relaytest"
)

const renderConfig = `
conversations:
  oncall: { to: "sip:oncall@contoso.com" }
  ci: { to: ["sip:ci1@contoso.com", "sip:ci2@contoso.com"] }
routes:
  - name: prod
    format: alertmanager
    conversations: [oncall]
  - name: gh
    format: github
    secret_file: gh.secret
    conversations: [ci]
`

func writeConfig(t *testing.T, cfg string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckConfigCommand(t *testing.T) {
	t.Setenv("RELAY_CONFIG", "")
	good := writeConfig(t, renderConfig, map[string]string{"gh.secret": "s3cret\n"})
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", good}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "config OK: routes 2") {
		t.Errorf("check-config good = exit %d, %q %q", code, out.String(), errOut.String())
	}
	// A template that parses but fails on real data (index out of range)
	// is caught by rendering the samples.
	broken := writeConfig(t, strings.Replace(renderConfig, "conversations: [oncall]", "conversations: [oncall]\n    template: bad.tmpl", 1),
		map[string]string{"gh.secret": "s3cret", "bad.tmpl": "{{ index .Alerts 9 }}"})
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check-config", "--config", broken}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), `routes "prod"`) || !strings.Contains(errOut.String(), "bad.tmpl") {
		t.Errorf("check-config broken = exit %d, stderr %q; want 1 naming the route and the template file", code, errOut.String())
	}
	syntax := writeConfig(t, strings.Replace(renderConfig, "conversations: [oncall]", "conversations: [oncall]\n    template: bad.tmpl", 1),
		map[string]string{"gh.secret": "s3cret", "bad.tmpl": "line one\n{{ if }}"})
	errOut.Reset()
	if code := run([]string{"check-config", "--config", syntax}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "bad.tmpl:2") {
		t.Errorf("check-config with a syntax error = exit %d, stderr %q; want 1 naming file and line", code, errOut.String())
	}
	// Without --secrets the secret file is not read: its absence is
	// reported as not checked; with --secrets it is an error.
	missing := writeConfig(t, renderConfig, nil)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check-config", "--config", missing}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "not checked") ||
		!strings.Contains(out.String(), "routes[1].secret_file") {
		t.Errorf("check-config without the secret file = exit %d, stdout %q, stderr %q; want 0 listing it as not checked", code, out.String(), errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"check-config", "--secrets", "--config", missing}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "routes[1].secret_file") {
		t.Errorf("check-config --secrets without the secret file = exit %d, stderr %q", code, errOut.String())
	}
}

func TestRenderCommand(t *testing.T) {
	t.Setenv("RELAY_CONFIG", "")
	path := writeConfig(t, renderConfig, map[string]string{"gh.secret": "s3cret"})
	var out, errOut bytes.Buffer
	if code := run([]string{"render", "--config", path, "--route", "gh"}, &out, &errOut); code != 0 {
		t.Fatalf("render gh samples = exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"--- to sip:ci1@contoso.com", "--- to sip:ci2@contoso.com", "[FAILED]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("render output lacks %q:\n%s", want, out.String())
		}
	}
	payload := filepath.Join(t.TempDir(), "am.json")
	if err := os.WriteFile(payload, relaytest.Notification("DiskFull", 2, "firing"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"render", "--config", path, "--route", "prod", "--payload", payload}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "[FIRING:2] DiskFull") || strings.Contains(out.String(), "fingerprint") {
		t.Errorf("render payload = exit %d:\n%s", code, out.String())
	}
	// A fingerprint that does not match the labels is pointed out.
	forged := bytes.ReplaceAll(relaytest.Notification("DiskFull", 2, "firing"), []byte("db-2.example.com"), []byte("db-7.example.com"))
	if err := os.WriteFile(payload, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"render", "--config", path, "--route", "prod", "--payload", payload}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "note: 1 alert(s) carry a fingerprint that does not match their labels (alerts[1]") {
		t.Errorf("render of a payload with a forged fingerprint = exit %d, want 0 and a note:\n%s", code, out.String())
	}
	if err := os.WriteFile(payload, []byte(`{"version":"3"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"render", "--config", path, "--route", "prod", "--payload", payload}, &out, &errOut); code != 1 ||
		!strings.Contains(out.String(), `version is "3"`) {
		t.Errorf("render of a bad payload = exit %d:\n%s", code, out.String())
	}
	if code := run([]string{"render", "--config", path}, &out, &errOut); code != 2 {
		t.Errorf("render without --route = exit %d, want 2", code)
	}
}
