package ui_test

import (
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// BenchmarkListPage measures the deliveries page's server time (store query
// and page rendering, over loopback HTTP) with a long history: 1 million
// finished deliveries over 30 days, filled by deploy/bench/fill-history.sql
// (RELAY_BENCH_ROWS changes the count). Each sub-benchmark is one common
// combination of filters; ns/op is the time per page.
//
//	go test -run '^$' -bench ListPage -benchtime 50x ./relay/ui/
func BenchmarkListPage(b *testing.B) {
	if _, err := exec.LookPath("psql"); err != nil {
		b.Skip("psql is needed to fill the history")
	}
	rows := os.Getenv("RELAY_BENCH_ROWS")
	if rows == "" {
		rows = "1000000"
	}
	bundle := setup(b, nil)
	url := bundle.dbURL
	start := time.Now()
	out, err := exec.Command("psql", url, "-q", "-v", "deliveries="+rows, "-v", "days=30", "-f", "../../deploy/bench/fill-history.sql").CombinedOutput()
	if err != nil {
		b.Fatalf("fill history: %v\n%s", err, out)
	}
	b.Logf("filled %s deliveries in %s", rows, time.Since(start).Round(time.Second))
	// Make the next ones Go measures the page with a warm cache, as a
	// console in use would have.
	br := bundle.browser(b)
	br.signIn()
	now := time.Now().UTC()
	for _, bc := range []struct{ name, query string }{
		{"newest", ""},
		{"state=dead", "?state=dead"},
		{"route", "?route=prod"},
		{"conversation+state", "?conversation=dba&state=uncertain"},
		{"last_hour", "?since=" + now.Add(-time.Hour).Format("2006-01-02T15:04")},
		{"one_day_10_days_ago", "?since=" + now.AddDate(0, 0, -10).Format("2006-01-02T15:04") + "&until=" + now.AddDate(0, 0, -9).Format("2006-01-02T15:04")},
		{"search_common", "?q=diskfull"},
		{"search_common+dead", "?q=diskfull&state=dead"},
		{"search_rare", "?q=nosuchalert"},
		{"search_common+conversation+dead", "?q=certexpiring&conversation=oncall&state=dead"},
		{"second_page", "?state=dead&cursor=" + nextCursor(b, br.get("/ui/deliveries?state=dead").body)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range 3 {
				if p := br.get("/ui/deliveries" + bc.query); p.status != http.StatusOK {
					b.Fatalf("status %d", p.status)
				}
			}
			b.ResetTimer()
			for range b.N {
				br.get("/ui/deliveries" + bc.query)
			}
		})
	}
}

var cursorParam = regexp.MustCompile(`cursor=([A-Za-z0-9_-]+)`)

func nextCursor(b *testing.B, body string) string {
	m := cursorParam.FindStringSubmatch(body)
	if m == nil {
		b.Fatal("the page has no link to the next one")
	}
	return m[1]
}
