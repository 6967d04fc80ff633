package alertmanager_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay/alertmanager"
	"github.com/skype-relay/relay/relay/relaytest"
)

func TestDedupKeyIgnoresEndsAtAndAlertOrder(t *testing.T) {
	t.Parallel()
	a, err := alertmanager.Decode(relaytest.Notification("HighCPU", 3, "firing"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := alertmanager.Decode(relaytest.Notification("HighCPU", 3, "firing"))
	b.Alerts[0].EndsAt = b.Alerts[0].StartsAt.Add(999)
	b.Alerts[0], b.Alerts[2] = b.Alerts[2], b.Alerts[0]
	if a.DedupKey("prod") != b.DedupKey("prod") {
		t.Error("DedupKey differs for the same alerts in another order with another endsAt")
	}
	for name, change := range map[string]func(m *alertmanager.Message){
		"route":     nil,
		"status":    func(m *alertmanager.Message) { m.Status = "resolved" },
		"receiver":  func(m *alertmanager.Message) { m.Receiver = "other" },
		"groupKey":  func(m *alertmanager.Message) { m.GroupKey += "x" },
		"alert":     func(m *alertmanager.Message) { m.Alerts[1].Status = "resolved" },
		"startsAt":  func(m *alertmanager.Message) { m.Alerts[1].StartsAt = m.Alerts[1].StartsAt.Add(1) },
		"truncated": func(m *alertmanager.Message) { m.TruncatedAlerts = 1 },
		"one fewer": func(m *alertmanager.Message) { m.Alerts = m.Alerts[1:] },
	} {
		c, _ := alertmanager.Decode(relaytest.Notification("HighCPU", 3, "firing"))
		route := "prod"
		if change == nil {
			route = "staging"
		} else {
			change(c)
		}
		if c.DedupKey(route) == a.DedupKey("prod") {
			t.Errorf("DedupKey unchanged when %s changes", name)
		}
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	t.Parallel()
	tests := []struct{ body, want string }{
		{`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"boom","startsAt":"2026-01-01T00:00:00Z"}]}`, `alerts[0].status is "boom"`},
		{`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing"}]}`, "alerts[0].startsAt is missing"},
		{`{"version":"4","groupKey":"","status":"firing","alerts":[]}`, "groupKey is empty"},
		{`{"version":"4","groupKey":"g","status":"maybe"}`, `status is "maybe"`},
		{`{"version":4}`, `field "version"`},
		{`{"version":"4","groupKey":"g","status":"firing","truncatedAlerts":-1,"alerts":[]}`, "truncatedAlerts is negative"},
	}
	for _, tt := range tests {
		_, err := alertmanager.Decode([]byte(tt.body))
		if !errors.Is(err, alertmanager.ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Decode(%s) = %v, want ErrMalformed mentioning %q", tt.body, err, tt.want)
		}
	}
}

func TestSamplesAreValid(t *testing.T) {
	t.Parallel()
	for i, m := range alertmanager.Samples() {
		if err := m.Validate(); err != nil {
			t.Errorf("sample %d: %v", i, err)
		}
	}
}

// FuzzDecode: no input panics the decoder; what it accepts validates and
// has a stable key.
func FuzzDecode(f *testing.F) {
	f.Add(relaytest.Notification("HighCPU", 2, "firing"))
	f.Add(relaytest.Notification("Disk", 1, "resolved"))
	f.Add([]byte(`{"version":"4"}`))
	f.Add([]byte(`{"alerts":[{"labels":{"a":"\u0000"}}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := alertmanager.Decode(body)
		if err != nil {
			if !errors.Is(err, alertmanager.ErrMalformed) {
				t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Decode accepted a message that does not validate: %v", err)
		}
		if first, again := m.DedupKey("r"), m.DedupKey("r"); first != again {
			t.Fatalf("DedupKey is not stable: %s, then %s", first, again)
		}
	})
}
func BenchmarkDecode(b *testing.B) {
	body := relaytest.Notification("HighCPU", 3, "firing")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := alertmanager.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
