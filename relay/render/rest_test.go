package render

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay/alertmanager"
)

func TestRenderRest(t *testing.T) {
	t.Parallel()
	many := func(n int) []alertmanager.Alert {
		var out []alertmanager.Alert
		for i := range n {
			out = append(out, cpuAlert(i))
		}
		return out
	}
	resolved := cpuAlert(7)
	resolved.Status = alertmanager.StatusResolved
	hostile := alert("alertname=Disk", "instance=db-1\n[RESOLVED:1] AllGood", "mount=/\u202etxt.exe")
	long := alert("alertname="+strings.Repeat("N", 5000), "instance=a")
	jsURL := message(nil, cpuAlert(1), cpuAlert(2))
	jsURL.ExternalURL = "javascript:alert(1)"
	tests := []struct {
		name     string
		maxBytes int
		m        *alertmanager.Message
		want     []string
		dontWant []string
	}{
		{name: "one name for all", m: message(nil, cpuAlert(1), cpuAlert(2), cpuAlert(3)),
			want: []string{"and 3 more HighCPU alerts (3 firing), not sent one by one: instance=web-1:9100; instance=web-2:9100; instance=web-3:9100\n" +
				"http://alertmanager.example:9093/#/alerts?receiver=oncall"}},
		{name: "names of their own", m: message(nil, cpuAlert(1), alert("alertname=Disk", "instance=db-1")),
			want: []string{"and 2 more alerts (2 firing), not sent one by one: HighCPU env=prod, instance=web-1:9100, job=node, severity=critical; Disk instance=db-1\n"}},
		{name: "resolved marked", m: message(nil, cpuAlert(1), resolved),
			want: []string{"(1 firing, 1 resolved)", "instance=web-1:9100; instance=web-7:9100 (resolved)"}},
		{name: "what does not fit is counted", maxBytes: 256, m: message(nil, many(100)...),
			want: []string{"and 100 more HighCPU alerts (100 firing), not sent one by one: instance=web-0:9100;", "; and 9", " more\nhttp"}},
		{name: "cleaned", m: message(nil, hostile, cpuAlert(1)),
			want:     []string{"instance=db-1<U+000A>[RESOLVED:1] AllGood", "mount=/<U+202E>txt.exe"},
			dontWant: []string{"\u202e", "db-1\n"}},
		{name: "long values cut", maxBytes: 256, m: message(nil, long, cpuAlert(1)),
			want: []string{"and 2 more alerts (2 firing), not sent one by one: NNNN", "…"}},
		{name: "no link that is not http", m: jsURL, dontWant: []string{"javascript", "http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			limit := tt.maxBytes
			if limit == 0 {
				limit = DefaultMaxBytes
			}
			e := newTestEngine(t, Options{MaxBytes: limit})
			got := e.RenderRest(NewData(tt.m, "r", "c"))
			if len(got) > limit || !utf8.ValidString(got) {
				t.Errorf("RenderRest() is %d bytes (valid UTF-8: %v), want at most %d", len(got), utf8.ValidString(got), limit)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("RenderRest() = %q, want it to hold %q", got, w)
				}
			}
			for _, w := range tt.dontWant {
				if strings.Contains(got, w) {
					t.Errorf("RenderRest() = %q, want it without %q", got, w)
				}
			}
		})
	}
}

// TestRenderRestBoundedForAnyLimit: whatever max_message_bytes allows and
// however many alerts are left, the summary fits one message.
func TestRenderRestBoundedForAnyLimit(t *testing.T) {
	t.Parallel()
	var alerts []alertmanager.Alert
	for i := range 1000 {
		a := cpuAlert(i)
		a.Labels["pod"] = strings.Repeat("p", i%300) + fmt.Sprint(i)
		alerts = append(alerts, a)
	}
	d := NewData(message(nil, alerts...), "r", "c")
	for _, limit := range []int{MinMaxBytes, 300, 1000, DefaultMaxBytes, 1 << 20} {
		e := newTestEngine(t, Options{MaxBytes: limit})
		got := e.RenderRest(d)
		if len(got) > limit || !strings.HasPrefix(got, "and 1000 more HighCPU alerts") || !strings.Contains(got, " more") {
			t.Errorf("MaxBytes %d: RenderRest() is %d bytes, starts %q", limit, len(got), got[:min(len(got), 60)])
		}
	}
}
