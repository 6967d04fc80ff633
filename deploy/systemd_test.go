package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay/config"
)

const unitFile = "systemd/relay.service"

// unitDirectives are the keys the unit may use, per section: those of
// systemd.unit(5), systemd.service(5), systemd.exec(5), systemd.kill(5)
// and systemd.resource-control(5) that a relay unit has a use for. A key
// outside the list is a typo or a new need; systemd itself would only warn
// and ignore it, leaving the service less confined than it reads.
var unitDirectives = map[string][]string{
	"Unit": {"Description", "Documentation", "Wants", "Requires", "After", "Before", "StartLimitIntervalSec", "StartLimitBurst"},
	"Service": {
		"Type", "ExecStart", "ExecReload", "TimeoutStopSec", "TimeoutStartSec", "Restart", "RestartSec", "KillSignal", "KillMode",
		"LoadCredential", "SetCredential", "Environment", "EnvironmentFile", "User", "Group", "DynamicUser", "UMask",
		"ConfigurationDirectory", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateUsers",
		"ProtectHostname", "ProtectClock", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
		"ProtectControlGroups", "ProtectProc", "ProcSubset", "NoNewPrivileges", "CapabilityBoundingSet",
		"AmbientCapabilities", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
		"LockPersonality", "MemoryDenyWriteExecute", "RemoveIPC", "SystemCallArchitectures", "SystemCallFilter",
		"SystemCallErrorNumber", "IPAddressAllow", "IPAddressDeny", "MemoryMax", "LimitNOFILE",
	},
	"Install": {"WantedBy"},
}

// unit is a parsed unit file: section -> key -> values, in order.
type unit map[string]map[string][]string

func readUnit(t *testing.T) unit {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if _, ok := unitDirectives[section]; !ok {
				t.Errorf("%s:%d: section [%s] is not one a service unit has", unitFile, n, section)
			}
			u[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Errorf("%s:%d: %q is neither a section nor key=value in one", unitFile, n, line)
				continue
			}
			if strings.HasSuffix(value, `\`) {
				t.Errorf("%s:%d: continued lines are not expected here", unitFile, n)
			}
			if !slices.Contains(unitDirectives[section], key) {
				t.Errorf("%s:%d: %s= is not a known key of [%s]", unitFile, n, key, section)
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	return u
}

func (u unit) value(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestSystemdUnit checks the unit's keys, its hardening, its command line
// against the relay command and its environment against relay's
// variables; where systemd-analyze is installed, it also verifies the unit
// and rates its sandbox.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	u := readUnit(t)

	// Hardening: the settings that keep a compromised relay to the network
	// and its own configuration.
	for key, want := range map[string]string{
		"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "MemoryDenyWriteExecute": "yes",
		"SystemCallArchitectures": "native", "RestrictNamespaces": "yes", "ProtectKernelTunables": "yes",
		"ProtectControlGroups": "yes", "LockPersonality": "yes",
	} {
		if _, ok := u["Service"][key]; !ok || u.value("Service", key) != want {
			t.Errorf("[Service] %s=%q, want %q", key, u.value("Service", key), want)
		}
	}
	if got := u["Service"]["SystemCallFilter"]; !slices.Contains(got, "@system-service") {
		t.Errorf("SystemCallFilter %q: want @system-service", got)
	}

	// The command line: relay serve with flags the command knows.
	exec0 := strings.Fields(u.value("Service", "ExecStart"))
	if len(exec0) < 2 || filepath.Base(exec0[0]) != "relay" || exec0[1] != "serve" {
		t.Fatalf("ExecStart %q: want relay serve", exec0)
	}
	bin := buildRelay(t)
	help, _ := exec.Command(bin, "serve", "-h").CombinedOutput() // exits 0 or 2; the text is what counts
	for _, a := range exec0[2:] {
		if name, ok := strings.CutPrefix(a, "--"); ok && !strings.Contains(string(help), "-"+name) {
			t.Errorf("ExecStart: relay serve does not know %s:\n%s", a, help)
		}
	}
	if !strings.Contains(u.value("Service", "ExecReload"), "-HUP $MAINPID") {
		t.Errorf("ExecReload %q: relay reloads on SIGHUP", u.value("Service", "ExecReload"))
	}

	// The environment: variables relay reads, naming credentials the unit loads.
	creds := map[string]bool{}
	for _, c := range u["Service"]["LoadCredential"] {
		name, _, _ := strings.Cut(c, ":")
		creds[name] = true
	}
	known := []string{config.EnvDatabaseURLFile, config.EnvAPIToken + "_FILE", config.EnvUCWAPassword + "_FILE",
		config.RouteTokenEnv("prod") + "_FILE"}
	for _, e := range u["Service"]["Environment"] {
		name, value, _ := strings.Cut(e, "=")
		if !slices.Contains(known, name) {
			t.Errorf("Environment=%s: not a variable relay reads", e)
		}
		if cred, ok := strings.CutPrefix(value, "%d/"); !ok || !creds[cred] {
			t.Errorf("Environment=%s: want %%d/NAME with NAME a LoadCredential= of the unit (%v)", e, creds)
		}
	}

	// systemd's own checks, where systemd is installed (not in every
	// container: the check above is then all there is).
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze not found: the unit's keys were checked against the list above only")
		return
	}
	// verify wants ExecStart's binary to exist: a copy of the unit points
	// at the relay just built.
	dir := t.TempDir()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "relay.service")
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(b, []byte(exec0[0]), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The exposure score runs from 0 (confined) to 10; the threshold is in
	// tenths.
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", copyPath).CombinedOutput()
	score := ""
	if i := bytes.LastIndex(out, []byte("Overall exposure level")); i >= 0 {
		score = strings.TrimSpace(string(out[i:]))
	}
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v): %s\n%s", err, score, out)
	}
	t.Logf("systemd-analyze verify: clean; security: %s", score)
}

// buildRelay builds the relay command into the test's temporary directory.
func buildRelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relay")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/relay").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ../cmd/relay: %v\n%s", err, out)
	}
	return bin
}
