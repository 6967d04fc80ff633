package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadBuild(t *testing.T) {
	t.Parallel()
	stamped := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{
			Main: debug.Module{Version: "v0.1.1-0.20261202070000-4f1c2e9a1b2c+dirty"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "4f1c2e9a1b2c3d4e"},
				{Key: "vcs.time", Value: "2026-12-02T07:00:00Z"},
				{Key: "vcs.modified", Value: "true"},
			},
		}, true
	}
	devel := func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true }
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		name                  string
		version, commit, date string
		read                  func() (*debug.BuildInfo, bool)
		want                  string // prefix of String()
	}{
		{"make build", "v0.1.0", "abc123", "2026-12-02T08:00:00Z", stamped,
			"v0.1.0 (commit abc123 with local changes, built 2026-12-02T08:00:00Z, go"},
		{"go build in a checkout", "", "", "", stamped,
			"v0.1.1-0.20261202070000-4f1c2e9a1b2c+dirty (commit 4f1c2e9a1b2c3d4e with local changes, committed 2026-12-02T07:00:00Z, go"},
		{"no VCS information", "", "", "", devel, "dev (go"},
		{"no build information", "", "", "", none, "dev (go"},
	} {
		got := readBuild(tc.version, tc.commit, tc.date, tc.read).String()
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: readBuild(...).String() = %q, want it to start %q", tc.name, got, tc.want)
		}
	}
}

// TestVersionCommand builds the binary with the -X flags the Makefile and
// the Dockerfile pass, and runs "relay version".
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"../../Makefile", "../../Dockerfile"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"-X main.version=", "-X main.commit=", "-X main.date="} {
			if !strings.Contains(string(b), v) {
				t.Errorf("%s does not set %s", file, v)
			}
		}
	}
	bin := filepath.Join(t.TempDir(), "relay")
	ldflags := "-X main.version=v9.8.7 -X main.commit=c0ffee -X main.date=2026-12-02T08:00:00Z"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if want := "relay v9.8.7 (commit c0ffee, built 2026-12-02T08:00:00Z, go"; err != nil || !strings.HasPrefix(string(out), want) {
		t.Errorf("relay version = %q (%v), want it to start %q", out, err, want)
	}
	var stdout, stderr strings.Builder
	if code := run([]string{"version", "extra"}, &stdout, &stderr); code != 2 {
		t.Errorf("relay version extra = exit %d, want 2", code)
	}
}
