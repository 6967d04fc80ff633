package alertmanager_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/model"

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
		"labels":    func(m *alertmanager.Message) { m.Alerts[1].Labels = m.Alerts[1].Labels.Remove([]string{"env"}) },
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

// TestFingerprintIsAlertmanagers: KV.Fingerprint is what Alertmanager
// writes in a webhook, model.LabelSet.Fingerprint as 16 hex digits.
func TestFingerprintIsAlertmanagers(t *testing.T) {
	t.Parallel()
	for _, kv := range []alertmanager.KV{
		{},
		{"alertname": "HighCPU"},
		{"alertname": "HighCPU", "instance": "db-1.example.com:9100", "job": "node", "severity": "critical", "env": "prod"},
		{"a": "b\xffc", "b": ""},
		{"ä": "ö", "z": "\u202e"},
	} {
		ls := model.LabelSet{}
		for k, v := range kv {
			ls[model.LabelName(k)] = model.LabelValue(v)
		}
		if got, want := kv.Fingerprint(), ls.Fingerprint().String(); got != want {
			t.Errorf("KV%v.Fingerprint() = %s, want %s", kv, got, want)
		}
	}
}

// TestDecodeComputesFingerprints: the fingerprint an alert gets is computed
// from its labels; the sender's is kept aside and compared.
func TestDecodeComputesFingerprints(t *testing.T) {
	t.Parallel()
	body := `{"version":"4","groupKey":"g","status":"firing","alerts":[
		{"status":"firing","labels":{"alertname":"A","instance":"x"},"startsAt":"2026-11-27T03:00:00Z","fingerprint":"%s"},
		{"status":"firing","labels":{"alertname":"A","instance":"y"},"startsAt":"2026-11-27T03:00:00Z"}]}`
	right := alertmanager.KV{"alertname": "A", "instance": "x"}.Fingerprint()
	tests := []struct {
		name     string
		sent     string
		mismatch bool
	}{
		{name: "right", sent: right},
		{name: "another alert's", sent: alertmanager.KV{"alertname": "A", "instance": "y"}.Fingerprint(), mismatch: true},
		{name: "made up", sent: "0000000000000001", mismatch: true},
		{name: "upper case", sent: strings.ToUpper(right), mismatch: true},
	}
	for _, tt := range tests {
		m, err := alertmanager.Decode(fmt.Appendf(nil, body, tt.sent))
		if err != nil {
			t.Fatalf("%s: Decode: %v", tt.name, err)
		}
		a := m.Alerts[0]
		if a.Fingerprint != right || a.SentFingerprint != tt.sent || a.FingerprintMismatch() != tt.mismatch {
			t.Errorf("%s: Fingerprint %q, SentFingerprint %q, FingerprintMismatch() %v; want %q, %q, %v",
				tt.name, a.Fingerprint, a.SentFingerprint, a.FingerprintMismatch(), right, tt.sent, tt.mismatch)
		}
		// None sent: computed all the same, and nothing to disagree with.
		if b := m.Alerts[1]; b.Fingerprint != (alertmanager.KV{"alertname": "A", "instance": "y"}).Fingerprint() || b.FingerprintMismatch() {
			t.Errorf("%s: alert without a fingerprint: Fingerprint %q, FingerprintMismatch() %v", tt.name, b.Fingerprint, b.FingerprintMismatch())
		}
	}
}

// TestDedupKeyIgnoresSentFingerprint is the attack of issue #13: a second
// notification with the group key, fingerprints and start times of the
// first but other labels is new content, not a duplicate.
func TestDedupKeyIgnoresSentFingerprint(t *testing.T) {
	t.Parallel()
	real := relaytest.Notification("HighCPU", 1, "firing")
	forged := bytes.ReplaceAll(real, []byte("db-1.example.com:9100"), []byte("db-9.example.com:9100"))
	forged = bytes.ReplaceAll(forged, []byte(`"severity":"critical"`), []byte(`"severity":"info"`))
	a, err := alertmanager.Decode(real)
	if err != nil {
		t.Fatal(err)
	}
	b, err := alertmanager.Decode(forged)
	if err != nil {
		t.Fatal(err)
	}
	if a.GroupKey != b.GroupKey || a.Alerts[0].SentFingerprint != b.Alerts[0].SentFingerprint || !a.Alerts[0].StartsAt.Equal(b.Alerts[0].StartsAt) {
		t.Fatal("the forged notification must share group key, sent fingerprint and startsAt with the real one")
	}
	if a.DedupKey("prod") == b.DedupKey("prod") {
		t.Error("DedupKey is the same for alerts with other labels under the same sent fingerprint")
	}
	// Whatever a Message holds in Fingerprint, the key follows the labels.
	c, _ := alertmanager.Decode(real)
	c.Alerts[0].Fingerprint = "0000000000000001"
	if c.DedupKey("prod") != a.DedupKey("prod") {
		t.Error("DedupKey changed with the Fingerprint field while the labels stayed the same")
	}
}

// TestShippedExamplesCarryAlertmanagersFingerprints: the demo's payloads
// look like Alertmanager's, fingerprints included.
func TestShippedExamplesCarryAlertmanagersFingerprints(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"../../deploy/examples/alertmanager-firing.json", "../../deploy/examples/alertmanager-resolved.json"} {
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := alertmanager.Decode(body)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for i, a := range m.Alerts {
			if a.FingerprintMismatch() {
				t.Errorf("%s: alerts[%d].fingerprint is %s, Alertmanager would write %s", path, i, a.SentFingerprint, a.Fingerprint)
			}
		}
	}
}
