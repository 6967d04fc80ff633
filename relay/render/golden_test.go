package render

import (
	"strings"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay/alertmanager"
)

func TestDefaultTemplateGolden(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})

	mixed := message([]string{"alertname"}, cpuAlert(1), resolved(cpuAlert(2), 18*time.Minute), cpuAlert(3))

	truncated := message([]string{"alertname", "env"}, cpuAlert(1), cpuAlert(2))
	truncated.TruncatedAlerts = 7

	differentNames := message([]string{"env"},
		annotate(alert("alertname=HighCPU", "env=prod", "instance=db-1"), "summary", "CPU hot"),
		annotate(alert("alertname=DiskFull", "env=prod", "instance=db-1", "mountpoint=/var"), "summary", "Disk /var at 97%"),
	)

	unicode := message([]string{"alertname"},
		annotate(alert("alertname=Störung", "service=Zahlungsverkehr 💶", "team=ops-東京"),
			"summary", "Dienst antwortet nicht — Kunden betroffen",
			"description", "Ошибка 503 für alle Anfragen seit 5 Minuten. 🙈"))

	long := message([]string{"alertname"},
		alert("alertname=LongLabels", "query="+strings.Repeat("sum(rate(http_requests_total{code=~\"5..\"}[5m])) by (route) / ", 12)))

	noURL := message(nil, cpuAlert(1))
	noURL.ExternalURL = ""
	noURL.Alerts[0].GeneratorURL = ""

	tests := []struct {
		name string
		msg  *alertmanager.Message
	}{
		{"firing_one", message([]string{"alertname"}, cpuAlert(1))},
		{"firing_many", message([]string{"alertname", "env"}, cpuAlert(1), cpuAlert(2), cpuAlert(3))},
		{"resolved_one", message([]string{"alertname"}, resolved(cpuAlert(1), 18*time.Minute+30*time.Second))},
		{"resolved_many", message([]string{"alertname"}, resolved(cpuAlert(1), time.Hour), resolved(cpuAlert(2), 26*time.Hour))},
		{"mixed", mixed},
		{"truncated", truncated},
		{"different_alertnames", differentNames},
		{"unicode", unicode},
		{"long_label", long},
		{"no_urls_no_group_labels", noURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.msg.Validate(); err != nil {
				t.Fatalf("test message is invalid: %v", err)
			}
			got, err := e.Render("alertmanager", NewData(tt.msg, "default", "oncall"))
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			checkGolden(t, tt.name, got+"\n")
		})
	}
}
