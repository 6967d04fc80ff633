package relaytest

import (
	"encoding/json"
	"fmt"
	"time"
)

// Notification builds a realistic Alertmanager webhook body (version 4):
// group is the alert group's name (it goes into the groupKey and
// alertname), alerts the number of alerts, status "firing" or "resolved".
func Notification(group string, alerts int, status string) []byte {
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	type alert struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	}
	msg := map[string]any{
		"version":           "4",
		"groupKey":          fmt.Sprintf(`{}/{severity="critical"}:{alertname=%q}`, group),
		"truncatedAlerts":   0,
		"receiver":          "relay",
		"status":            status,
		"groupLabels":       map[string]string{"alertname": group},
		"commonLabels":      map[string]string{"alertname": group, "job": "node", "env": "prod"},
		"commonAnnotations": map[string]string{},
		"externalURL":       "http://alertmanager.example.com:9093",
	}
	list := make([]alert, alerts)
	for i := range list {
		inst := fmt.Sprintf("db-%d.example.com:9100", i+1)
		a := alert{
			Status: status,
			Labels: map[string]string{"alertname": group, "instance": inst, "job": "node", "env": "prod",
				"severity": "critical"},
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("%s on %s", group, inst),
				"description": fmt.Sprintf("CPU usage on %s has been above 90%% for 10 minutes (current value: 97.3%%).", inst),
				"runbook_url": "https://runbooks.example.com/" + group,
			},
			StartsAt:     start,
			GeneratorURL: "http://prometheus.example.com:9090/graph?g0.expr=node_cpu_usage%3E0.9&g0.tab=1",
			Fingerprint:  fmt.Sprintf("%016x", uint64(i+1)*0x9e3779b97f4a7c15),
		}
		if status == "resolved" {
			a.EndsAt = start.Add(20 * time.Minute)
		}
		list[i] = a
	}
	msg["alerts"] = list
	b, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	return b
}
