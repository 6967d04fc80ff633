package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProgram builds ucwa-sim, runs it, GETs the printed discovery URL and
// stops it with SIGTERM.
func TestProgram(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ucwa-sim")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-time-scale", "0.01", "-password", "pw-for-test")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	for len(lines) < 5 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 5 || !strings.HasPrefix(lines[0], "discovery_url=http://127.0.0.1:") ||
		!strings.HasPrefix(lines[1], "discovery_url_backup=") || !strings.HasPrefix(lines[2], "control_url=") ||
		!strings.HasPrefix(lines[3], "pool fe1 http://") {
		t.Fatalf("printed lines %q", lines)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	res, err := http.Get(strings.TrimPrefix(lines[0], "discovery_url="))
	if err != nil {
		t.Fatal(err)
	}
	var root struct {
		Links map[string]struct{ Href string } `json:"_links"`
	}
	err = json.NewDecoder(res.Body).Decode(&root)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || root.Links["user"].Href == "" {
		t.Fatalf("GET discovery: %d %+v %v", res.StatusCode, root, err)
	}

	// The control API: links on another host, then the request rate.
	control := strings.TrimPrefix(lines[2], "control_url=")
	req, _ := http.NewRequest("PUT", control+"/sim/pools/fe1/link-host", strings.NewReader(`{"host":"localhost"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("PUT link-host = %d", res.StatusCode)
	}
	res, err = http.Get(strings.TrimPrefix(lines[0], "discovery_url="))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(res.Body).Decode(&root)
	res.Body.Close()
	if err != nil || !strings.HasPrefix(root.Links["user"].Href, "http://localhost:") {
		t.Fatalf("user link after link-host: %+v %v", root, err)
	}
	res, err = http.Get(control + "/sim/rate?host=internal")
	if err != nil {
		t.Fatal(err)
	}
	var rate struct{ MaxPerSecond, Total int }
	err = json.NewDecoder(res.Body).Decode(&rate)
	res.Body.Close()
	if err != nil || rate.Total != 2 || rate.MaxPerSecond < 1 {
		t.Fatalf("GET /sim/rate = %+v %v, want 2 requests to the primary root", rate, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr %s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "pw-for-test") {
		t.Error("password leaked to stderr")
	}
}

// TestHelpListsControlAPI checks that -h documents the control API.
func TestHelpListsControlAPI(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run([]string{"-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run -h = %d", code)
	}
	for _, want := range []string{"-time-scale", "/sim/faults", "/sim/pools/{pool}/link-host", "/sim/recipients/{sip}/unconfirmed", "/sim/rate?host="} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stderr.String())
		}
	}
}
