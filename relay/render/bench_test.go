package render

import (
	"testing"
	"time"
)

// benchData is a realistic notification: five node alerts of one group,
// one of them resolved, with summary, description and runbook.
func benchData() Data {
	m := message([]string{"alertname", "env"}, cpuAlert(1), cpuAlert(2), cpuAlert(3), resolved(cpuAlert(4), 12*time.Minute), cpuAlert(5))
	return NewData(m, "default", "oncall")
}

func BenchmarkRender(b *testing.B) {
	e := newTestEngine(b, Options{})
	d := benchData()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Render("alertmanager", d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderParts(b *testing.B) {
	e := newTestEngine(b, Options{})
	d := benchData()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.RenderParts("alertmanager", d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderPartsSplit measures a notification that must be split:
// 100 alerts into 8 KiB parts.
func BenchmarkRenderPartsSplit(b *testing.B) {
	e := newTestEngine(b, Options{})
	var d Data
	{
		m := benchData()
		for i := range 100 {
			m.Alerts = append(m.Alerts, cpuAlert(10+i))
		}
		m.AllAlerts = m.Alerts
		d = m
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.RenderParts("alertmanager", d); err != nil {
			b.Fatal(err)
		}
	}
}
