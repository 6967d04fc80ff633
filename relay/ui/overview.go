package ui

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// overviewData is the overview page's data.
type overviewData struct {
	O        *store.Overview
	Now      time.Time
	States   []stateCount
	Outcomes chart
	Latency  chart
	// SessionLive: the session lease is held now.
	SessionLive bool
}

type stateCount struct {
	State relay.State
	N     int64
	// Queued counts every unfinished delivery; the others count those of
	// the last day.
	Queued bool
}

// outcomeStates are the series of the outcomes chart, bottom up; queued
// stands for pending and sending.
var outcomeStates = []relay.State{relay.StateDelivered, relay.StateSuperseded, relay.StateUncertain, relay.StateDead, relay.StatePending}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, id *identity) {
	now := c.now()
	o, err := c.db.Overview(r.Context(), now)
	if err != nil {
		c.failErr(w, r, id, err)
		return
	}
	d := overviewData{O: o, Now: now, SessionLive: o.Session.Holder != "" && o.Session.ExpiresAt.After(now)}
	for _, st := range []relay.State{relay.StatePending, relay.StateSending} {
		d.States = append(d.States, stateCount{State: st, N: o.Queued[st], Queued: true})
	}
	for _, st := range []relay.State{relay.StateDelivered, relay.StateDead, relay.StateUncertain, relay.StateSuperseded} {
		d.States = append(d.States, stateCount{State: st, N: o.Recent[st]})
	}
	d.Outcomes = outcomesChart(o)
	d.Latency = latencyChart(o)
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", User: id.user, CSRF: id.csrf, Bearer: id.bearer, Data: d})
}

// chart is an SVG chart drawn on the server: bars and lines in plot
// coordinates, styled by class from console.css (no inline style).
type chart struct {
	Width, Height float64
	// Plot is the drawing area inside the axes.
	PlotX, PlotY, PlotW, PlotH float64
	// BaseY and RightX are the bottom and the right end of the plot.
	BaseY, RightX  float64
	Bars           []bar
	Lines          []line
	XTicks, YTicks []tick
	// Summary says in words what the chart shows, for screen readers.
	Summary string
	Legend  []legendItem
}

type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type line struct {
	Points string
	Class  string
}

type tick struct {
	X, Y  float64
	Label string
}

type legendItem struct{ Label, Class string }

const (
	chartW    = 880.0
	chartH    = 200.0
	marginL   = 48.0
	marginR   = 8.0
	marginTop = 8.0
	marginBot = 24.0
)

func newChart() chart {
	ch := chart{Width: chartW, Height: chartH, PlotX: marginL, PlotY: marginTop,
		PlotW: chartW - marginL - marginR, PlotH: chartH - marginTop - marginBot}
	ch.BaseY, ch.RightX = ch.PlotY+ch.PlotH, ch.PlotX+ch.PlotW
	return ch
}

// xTicks marks every fourth hour of the day before the chart's end.
func (ch *chart) xTicks(since time.Time, span time.Duration) {
	first := since.Truncate(4 * time.Hour).Add(4 * time.Hour)
	for t := first; t.Before(since.Add(span)); t = t.Add(4 * time.Hour) {
		x := ch.PlotX + ch.PlotW*float64(t.Sub(since))/float64(span)
		ch.XTicks = append(ch.XTicks, tick{X: x, Y: ch.PlotY + ch.PlotH + 16, Label: t.UTC().Format("15:04")})
	}
}

// yTicks marks 0, half and the top of a scale up to max.
func (ch *chart) yTicks(max float64, format func(float64) string) {
	for _, f := range []float64{0, 0.5, 1} {
		ch.YTicks = append(ch.YTicks, tick{X: ch.PlotX - 6, Y: ch.PlotY + ch.PlotH*(1-f) + 4, Label: format(max * f)})
	}
}

func outcomesChart(o *store.Overview) chart {
	ch := newChart()
	ch.Legend = []legendItem{{"delivered", "s-delivered"}, {"superseded", "s-superseded"}, {"uncertain", "s-uncertain"},
		{"dead", "s-dead"}, {"queued", "s-pending"}}
	peak := int64(0)
	var total [5]int64
	for _, b := range o.Buckets {
		sum := int64(0)
		for _, n := range b.Counts {
			sum += n
		}
		peak = max(peak, sum)
	}
	scale := niceCeil(float64(peak))
	n := float64(len(o.Buckets))
	for i, b := range o.Buckets {
		x := ch.PlotX + ch.PlotW*float64(i)/n
		w := math.Max(ch.PlotW/n-0.5, 0.5)
		y := ch.PlotY + ch.PlotH
		for j, st := range outcomeStates {
			v := b.Counts[st]
			if st == relay.StatePending {
				v += b.Counts[relay.StateSending]
			}
			total[j] += v
			if v == 0 {
				continue
			}
			h := ch.PlotH * float64(v) / scale
			y -= h
			ch.Bars = append(ch.Bars, bar{X: x, Y: y, W: w, H: h, Class: "s-" + string(st),
				Title: fmt.Sprintf("%s–%s UTC: %d %s", b.At.UTC().Format("15:04"), b.At.Add(o.Step).UTC().Format("15:04"), v, ch.Legend[j].Label)})
		}
	}
	ch.xTicks(o.Since, time.Duration(len(o.Buckets))*o.Step)
	ch.yTicks(scale, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	var parts []string
	for j, item := range ch.Legend {
		parts = append(parts, fmt.Sprintf("%d %s", total[j], item.Label))
	}
	ch.Summary = "Deliveries created in the last 24 hours, per 5 minutes, by outcome: " + strings.Join(parts, ", ") +
		fmt.Sprintf("; at most %d in one 5-minute interval.", peak)
	return ch
}

func latencyChart(o *store.Overview) chart {
	ch := newChart()
	ch.Legend = []legendItem{{"p50", "l-p50"}, {"p99", "l-p99"}}
	peak := 0.0
	for _, b := range o.Latency {
		peak = math.Max(peak, b.P99)
	}
	scale := niceCeil(peak)
	if scale == 0 {
		scale = 1
	}
	n := float64(len(o.Latency))
	var p50, p99 []string
	var worst50, worst99 float64
	for i, b := range o.Latency {
		if b.N == 0 {
			continue
		}
		x := ch.PlotX + ch.PlotW*(float64(i)+0.5)/n
		p50 = append(p50, fmt.Sprintf("%.1f,%.1f", x, ch.PlotY+ch.PlotH*(1-b.P50/scale)))
		p99 = append(p99, fmt.Sprintf("%.1f,%.1f", x, ch.PlotY+ch.PlotH*(1-b.P99/scale)))
		worst50, worst99 = math.Max(worst50, b.P50), math.Max(worst99, b.P99)
		for _, p := range []struct {
			v     float64
			class string
			name  string
		}{{b.P50, "l-p50", "p50"}, {b.P99, "l-p99", "p99"}} {
			ch.Bars = append(ch.Bars, bar{X: x - 2, Y: ch.PlotY + ch.PlotH*(1-p.v/scale) - 2, W: 4, H: 4, Class: p.class,
				Title: fmt.Sprintf("%s–%s UTC: %s %s over %d deliveries", b.At.UTC().Format("15:04"),
					b.At.Add(o.LatencyStep).UTC().Format("15:04"), p.name, seconds(p.v), b.N)})
		}
	}
	if len(p50) > 0 {
		ch.Lines = []line{{Points: strings.Join(p50, " "), Class: "l-p50"}, {Points: strings.Join(p99, " "), Class: "l-p99"}}
	}
	ch.xTicks(o.Since, time.Duration(len(o.Latency))*o.LatencyStep)
	ch.yTicks(scale, seconds)
	if len(p50) == 0 {
		ch.Summary = "No delivery was confirmed in the last 24 hours."
	} else {
		ch.Summary = fmt.Sprintf("Time from queued to confirmed in the last 24 hours, per hour: the hourly median peaked at %s, the hourly 99th percentile at %s.",
			seconds(worst50), seconds(worst99))
	}
	return ch
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// seconds prints a duration in seconds for people: 40 ms, 1.2 s, 3m 5s.
func seconds(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.0f ms", v*1000)
	case v < 60:
		return fmt.Sprintf("%.1f s", v)
	default:
		return duration(time.Duration(v * float64(time.Second)))
	}
}

// duration prints d like "38s", "5m 0s", "2h 5m", "3d 4h".
func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
