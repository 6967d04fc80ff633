package match

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay/alertmanager"
)

func testAlert(status string, fp string, labels, annotations alertmanager.KV) alertmanager.Alert {
	return alertmanager.Alert{
		Status:      status,
		Labels:      labels,
		Annotations: annotations,
		StartsAt:    time.Date(2026, 11, 27, 3, 2, 5, 0, time.UTC),
		Fingerprint: fp,
	}
}

func TestSplit(t *testing.T) {
	t.Parallel()
	msg := &alertmanager.Message{
		Version:         alertmanager.Version,
		GroupKey:        `{}:{alertname="HighLatency"}`,
		TruncatedAlerts: 2,
		Receiver:        "relay",
		Status:          alertmanager.StatusFiring,
		Alerts: alertmanager.Alerts{
			testAlert("firing", "a1", alertmanager.KV{"alertname": "HighLatency", "team": "db", "severity": "critical"}, alertmanager.KV{"summary": "p99 high", "runbook": "r1"}),
			testAlert("resolved", "a2", alertmanager.KV{"alertname": "HighLatency", "team": "web", "severity": "warning"}, alertmanager.KV{"summary": "p99 high"}),
			testAlert("resolved", "a3", alertmanager.KV{"alertname": "HighLatency", "team": "db", "severity": "warning"}, alertmanager.KV{"summary": "p99 high", "runbook": "r1"}),
			testAlert("firing", "a4", alertmanager.KV{"alertname": "HighLatency", "team": "dev", "env": "dev"}, nil),
		},
		GroupLabels:       alertmanager.KV{"alertname": "HighLatency"},
		CommonLabels:      alertmanager.KV{"alertname": "HighLatency"},
		CommonAnnotations: alertmanager.KV{},
		ExternalURL:       "https://am.example.com",
	}
	before := *msg
	beforeAlerts := slices.Clone(msg.Alerts)
	rules := []Rule{
		{Matchers: mustList(t, `severity="critical"`), Conversations: []string{"oncall"}, Continue: true},
		{Matchers: mustList(t, `team="db"`), Conversations: []string{"dba"}},
		{Matchers: mustList(t, `env="dev"`)},
	}
	got := Split(msg, rules, []string{"general"})

	if diff := cmp.Diff([]string{"dba", "general", "oncall"}, slices.Sorted(maps.Keys(got))); diff != "" {
		t.Fatalf("Split conversations mismatch (-want +got):\n%s", diff)
	}
	fps := func(m *alertmanager.Message) []string {
		var out []string
		for _, a := range m.Alerts {
			out = append(out, a.Fingerprint)
		}
		return out
	}
	tests := []struct {
		conv        string
		fps         []string
		status      string
		labels      alertmanager.KV
		annotations alertmanager.KV
	}{
		{"oncall", []string{"a1"}, "firing", alertmanager.KV{"alertname": "HighLatency", "team": "db", "severity": "critical"}, alertmanager.KV{"summary": "p99 high", "runbook": "r1"}},
		{"dba", []string{"a1", "a3"}, "firing", alertmanager.KV{"alertname": "HighLatency", "team": "db"}, alertmanager.KV{"summary": "p99 high", "runbook": "r1"}},
		{"general", []string{"a2"}, "resolved", alertmanager.KV{"alertname": "HighLatency", "team": "web", "severity": "warning"}, alertmanager.KV{"summary": "p99 high"}},
	}
	for _, tt := range tests {
		sub := got[tt.conv]
		if diff := cmp.Diff(tt.fps, fps(sub)); diff != "" {
			t.Errorf("Split()[%q] alerts mismatch (-want +got):\n%s", tt.conv, diff)
		}
		if sub.Status != tt.status {
			t.Errorf("Split()[%q].Status = %q, want %q", tt.conv, sub.Status, tt.status)
		}
		if diff := cmp.Diff(tt.labels, sub.CommonLabels); diff != "" {
			t.Errorf("Split()[%q].CommonLabels mismatch (-want +got):\n%s", tt.conv, diff)
		}
		if diff := cmp.Diff(tt.annotations, sub.CommonAnnotations); diff != "" {
			t.Errorf("Split()[%q].CommonAnnotations mismatch (-want +got):\n%s", tt.conv, diff)
		}
		if sub.GroupKey != msg.GroupKey || sub.Receiver != msg.Receiver || sub.ExternalURL != msg.ExternalURL ||
			sub.Version != msg.Version || !cmp.Equal(sub.GroupLabels, msg.GroupLabels) || sub.TruncatedAlerts != 2 {
			t.Errorf("Split()[%q] envelope = %+v, want the original's with truncatedAlerts 2", tt.conv, sub)
		}
		if err := sub.Validate(); err != nil {
			t.Errorf("Split()[%q] is not a valid notification: %v", tt.conv, err)
		}
	}
	// The original is untouched.
	if !cmp.Equal(before.Alerts, beforeAlerts) || msg.Status != before.Status || !cmp.Equal(msg.CommonLabels, before.CommonLabels) {
		t.Error("Split modified its input")
	}
}

func TestSplitNowhere(t *testing.T) {
	t.Parallel()
	msg := &alertmanager.Message{
		Version: alertmanager.Version, GroupKey: "g", Status: "firing",
		Alerts: alertmanager.Alerts{testAlert("firing", "a", alertmanager.KV{"x": "1"}, nil)},
	}
	if got := Split(msg, nil, nil); len(got) != 0 {
		t.Errorf("Split(no rules, no defaults) = %v, want empty", got)
	}
	got := Split(msg, nil, []string{"d"})
	if len(got) != 1 || len(got["d"].Alerts) != 1 || got["d"].CommonLabels["x"] != "1" {
		t.Errorf("Split(defaults only) = %v, want everything in d", got)
	}
}
