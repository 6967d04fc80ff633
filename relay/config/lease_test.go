package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestMinLease(t *testing.T) {
	t.Parallel()
	def := DefaultUCWATimers()
	fast := def
	fast.InvitationTimeout, fast.MessageTimeout, fast.RequestTimeout = time.Second, time.Second, time.Second
	odd := def
	odd.InvitationTimeout, odd.MessageTimeout, odd.RequestTimeout = 50*time.Second, 51*time.Second, 0
	for _, tc := range []struct {
		name   string
		timers UCWATimers
		want   time.Duration
	}{
		{"defaults", def, 3*time.Minute + 40*time.Second},
		{"fast timers keep the floor", fast, 30 * time.Second},
		{"rounded up to the second", odd, 135 * time.Second}, // 101s * 4/3 = 134.67s
	} {
		got := MinLease(tc.timers)
		if got != tc.want {
			t.Errorf("%s: MinLease = %s, want %s", tc.name, got, tc.want)
		}
		if got*3/4 < SlowestSend(tc.timers) {
			t.Errorf("%s: 3/4 of MinLease %s = %s is shorter than the slowest send %s", tc.name, got, got*3/4, SlowestSend(tc.timers))
		}
	}
}

// TestLeaseProblem: one problem for delivery.lease, naming the same
// minimum as the example configuration's comment.
func TestLeaseProblem(t *testing.T) {
	t.Parallel()
	const ucwa = "ucwa: {discovery_urls: [\"https://lyncdiscover.contoso.com\"], username: a@contoso.com}\n"
	pw := env(EnvUCWAPassword, "pw")
	for _, tc := range []struct {
		name, yaml string
		want       string // "" for no problem
	}{
		{"below the floor", ucwa + "delivery: {lease: 10s}\n", "must be at least 3m40s"},
		{"below the timers' minimum", ucwa + "delivery: {lease: 3m39s}\n", "must be at least 3m40s"},
		{"at the minimum", ucwa + "delivery: {lease: 3m40s}\n", ""},
		{"no ucwa, below the floor", "delivery: {lease: 10s}\n", "must be at least 30s"},
		{"no ucwa, at the floor", "delivery: {lease: 30s}\n", ""},
	} {
		_, err := Parse([]byte(tc.yaml+minimal), t.TempDir(), pw)
		var got []string
		for _, p := range AsProblems(err) {
			if p.Key == "delivery.lease" {
				got = append(got, p.Msg)
			}
		}
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s: problems %q, want none", tc.name, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: delivery.lease problems %q, want exactly one saying %q", tc.name, got, tc.want)
		}
	}

	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	comment := leaseComment(string(data))
	want := "at least " + MinLease(DefaultUCWATimers()).String() + " with the default timers"
	if !strings.Contains(comment, want) {
		t.Errorf("%s: the comment on delivery.lease does not say %q:\n%s", examplePath, want, comment)
	}
}

// leaseComment returns the comment lines above "lease:" in the delivery
// section, joined by spaces.
func leaseComment(text string) string {
	lines := strings.Split(text, "\n")
	inDelivery := false
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "delivery:"):
			inDelivery = true
		case inDelivery && strings.HasPrefix(strings.TrimSpace(l), "lease:"):
			var c []string
			for j := i - 1; j >= 0 && strings.HasPrefix(strings.TrimSpace(lines[j]), "#"); j-- {
				c = append([]string{strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[j]), "#"))}, c...)
			}
			return strings.Join(c, " ")
		}
	}
	return ""
}
