package ucwasim

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestMaxPerSecond(t *testing.T) {
	t.Parallel()
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, n := range v {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		ts   []time.Duration
		want int
	}{
		{"none", nil, 0},
		{"one", ms(5), 1},
		{"within a second", ms(0, 999), 2},
		{"a second apart", ms(0, 1000), 1},
		{"three per second, evenly spaced", ms(0, 333, 666, 999), 4},
		{"two per second", ms(0, 500, 1000, 1500, 2000), 2},
		{"a burst later", ms(0, 1000, 2000, 2100, 2200, 2300, 4000), 4},
	}
	for _, tt := range tests {
		if got := maxPerSecond(tt.ts); got != tt.want {
			t.Errorf("%s: maxPerSecond(%v) = %d, want %d", tt.name, tt.ts, got, tt.want)
		}
	}
}

func TestHostRateBounded(t *testing.T) {
	t.Parallel()
	var h hostRate
	start := time.Now()
	for range maxRateSamples + 10 {
		h.add(start)
	}
	if n := len(h.retained()); n != maxRateSamples {
		t.Errorf("retained %d arrivals, want %d", n, maxRateSamples)
	}
	if h.max < maxRateSamples/2 || h.max > maxRateSamples {
		t.Errorf("max = %d, want at most the %d kept and most of them (added in well under a second)", h.max, maxRateSamples)
	}
}

func TestRequestRate(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{})
	c := newClient(t)
	ctl := newClient(t)
	begin := time.Now()
	fe1 := s.PoolURL("fe1")
	for range 4 {
		c.doAnon("GET", fe1+userPath, "", "") // 401, fine without a token
	}
	// A reset and a token request count too (POSTs: never retried by the
	// transport).
	s.Inject(Fault{Pool: "fe1", Resource: "token", Reset: true})
	if _, err := c.send0(context.Background(), "POST", fe1+tokenPath, "application/x-www-form-urlencoded", "grant_type=password", false); err == nil {
		t.Fatal("reset token request answered")
	}
	c.getToken(fe1+tokenPath, "secret")
	c.do("GET", s.DiscoveryURLs()[0], "", "")
	c.do("GET", s.DiscoveryURLs()[0], "", "")
	ctl.do("GET", s.ControlURL()+"/sim/stats", "", "") // not counted

	st := s.Stats()
	want := map[string]int{"internal": 2, "external": 0, "fe1": 6, "fe2-backup": 0}
	for host, n := range want {
		if st.MaxRequestsPerSecond[host] != n {
			t.Errorf("MaxRequestsPerSecond = %v, want %v", st.MaxRequestsPerSecond, want)
			break
		}
	}
	if m, n := s.RequestRate("fe1", begin, time.Time{}); m != 6 || n != 6 {
		t.Errorf("RequestRate(fe1, begin, -) = %d, %d, want 6, 6", m, n)
	}

	time.Sleep(1100 * time.Millisecond)
	mid := time.Now()
	c.doAnon("GET", fe1+userPath, "", "")
	time.Sleep(300 * time.Millisecond) // well within one second of the first
	c.doAnon("GET", fe1+userPath, "", "")
	if m, n := s.RequestRate("fe1", mid, time.Time{}); m != 2 || n != 2 {
		t.Errorf("RequestRate(fe1, mid, -) = %d, %d, want 2, 2", m, n)
	}
	if m, n := s.RequestRate("fe1", begin, mid); m != 6 || n != 6 {
		t.Errorf("RequestRate(fe1, begin, mid) = %d, %d, want 6, 6", m, n)
	}
	if m, n := s.RequestRate("nope", begin, time.Time{}); m != 0 || n != 0 {
		t.Errorf("RequestRate(unknown host) = %d, %d", m, n)
	}
	if got := s.Stats().MaxRequestsPerSecond["fe1"]; got != 6 {
		t.Errorf("MaxRequestsPerSecond[fe1] = %d, want still 6", got)
	}

	var rate struct {
		Host         string
		MaxPerSecond int
		Total        int
	}
	r := ctl.do("GET", s.ControlURL()+"/sim/rate?host=fe1&from="+url.QueryEscape(mid.Format(time.RFC3339Nano)), "", "")
	r.json(t, &rate)
	if r.status != http.StatusOK || rate.Host != "fe1" || rate.MaxPerSecond != 2 || rate.Total != 2 {
		t.Errorf("GET /sim/rate = %d %+v, want fe1 2 2", r.status, rate)
	}
	if r := ctl.do("GET", s.ControlURL()+"/sim/rate?host=nope", "", ""); r.status != http.StatusNotFound {
		t.Errorf("GET /sim/rate unknown host = %d, want 404", r.status)
	}
	if r := ctl.do("GET", s.ControlURL()+"/sim/rate?host=fe1&to=yesterday", "", ""); r.status != http.StatusBadRequest {
		t.Errorf("GET /sim/rate bad time = %d, want 400", r.status)
	}
	noViolations(t, s)
}
