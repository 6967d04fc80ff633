package alertmanager

import "time"

// Samples returns built-in notifications that exercise a template the way
// real traffic does: a firing group of several alerts, a resolved one, and a
// group with truncated alerts. check-config renders every route against them.
func Samples() []*Message {
	start := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	end := start.Add(17 * time.Minute)
	alert := func(status, name, instance, severity string) Alert {
		labels := KV{"alertname": name, "instance": instance, "job": "node", "severity": severity, "env": "prod"}
		a := Alert{
			Status: status,
			Labels: labels,
			Annotations: KV{
				"summary":     name + " on " + instance,
				"description": "The value on " + instance + " has been above the threshold for 10 minutes.",
				"runbook_url": "https://runbooks.example.com/" + name,
			},
			StartsAt:     start,
			GeneratorURL: "http://prometheus.example.com:9090/graph?g0.expr=up",
			Fingerprint:  labels.Fingerprint(),
		}
		if status == StatusResolved {
			a.EndsAt = end
		}
		return a
	}
	group := func(status string, alerts ...Alert) *Message {
		return &Message{
			Version: Version, GroupKey: `{}:{alertname="HighCPU"}`, Receiver: "relay", Status: status,
			Alerts:            alerts,
			GroupLabels:       KV{"alertname": "HighCPU"},
			CommonLabels:      KV{"alertname": "HighCPU", "job": "node", "env": "prod"},
			CommonAnnotations: KV{},
			ExternalURL:       "http://alertmanager.example.com:9093",
		}
	}
	firing := group(StatusFiring,
		alert(StatusFiring, "HighCPU", "db-1", "critical"),
		alert(StatusFiring, "HighCPU", "db-2", "warning"),
		alert(StatusResolved, "HighCPU", "db-3", "warning"))
	resolved := group(StatusResolved, alert(StatusResolved, "HighCPU", "db-1", "critical"))
	truncated := group(StatusFiring, alert(StatusFiring, "HighCPU", "db-1", "critical"))
	truncated.TruncatedAlerts = 42
	return []*Message{firing, resolved, truncated}
}
