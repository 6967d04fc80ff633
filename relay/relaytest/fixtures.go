package relaytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/skype-relay/relay/relay/alertmanager"
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
		labels := map[string]string{"alertname": group, "instance": inst, "job": "node", "env": "prod",
			"severity": "critical"}
		a := alert{
			Status: status,
			Labels: labels,
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("%s on %s", group, inst),
				"description": fmt.Sprintf("CPU usage on %s has been above 90%% for 10 minutes (current value: 97.3%%).", inst),
				"runbook_url": "https://runbooks.example.com/" + group,
			},
			StartsAt:     start,
			GeneratorURL: "http://prometheus.example.com:9090/graph?g0.expr=node_cpu_usage%3E0.9&g0.tab=1",
			Fingerprint:  alertmanager.KV(labels).Fingerprint(),
		}
		if status == "resolved" {
			a.EndsAt = start.Add(20 * time.Minute)
		}
		list[i] = a
	}
	msg["alerts"] = list
	// Not HTML-escaped: the payload stored must hold the characters
	// themselves, as a sender's would.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(msg); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Hostile values a sender may put in labels and annotations, to check that
// whatever shows them keeps them inert.
const (
	HostileScript = `<script>alert("relay")</script>`
	HostileImg    = `<img src=x onerror=alert(1)>`
	HostileLink   = `javascript:alert(document.cookie)`
	// HostileBidi reverses what follows it (U+202E RIGHT-TO-LEFT OVERRIDE)
	// and isolates it (U+2066).
	HostileBidi = "gnp.\u202eexe\u2066.txt"
)

// HostileNotification is an Alertmanager notification whose alert name,
// labels, annotations and links carry the Hostile values.
func HostileNotification() []byte {
	alertname := "Evil" + HostileScript
	labels := map[string]string{"alertname": alertname, "instance": HostileImg, "file": HostileBidi, "severity": "critical"}
	msg := map[string]any{
		"version":           "4",
		"groupKey":          `{}:{alertname="evil"}`,
		"truncatedAlerts":   0,
		"receiver":          "relay" + HostileImg,
		"status":            "firing",
		"groupLabels":       map[string]string{"alertname": alertname},
		"commonLabels":      labels,
		"commonAnnotations": map[string]string{"summary": HostileImg + " " + HostileBidi, "runbook_url": HostileLink},
		"externalURL":       HostileLink,
		"alerts": []map[string]any{{
			"status": "firing", "labels": labels,
			"annotations": map[string]string{"summary": HostileImg + " " + HostileBidi, "description": HostileScript,
				"runbook_url": HostileLink},
			"startsAt": "2026-11-27T03:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
			"generatorURL": HostileLink, "fingerprint": "e1e1e1e1e1e1e1e1",
		}},
	}
	// Not HTML-escaped: the payload stored must hold the characters
	// themselves, as a sender's would.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(msg); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
