package ucwasim

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Time
		wantOK bool
	}{
		{"1", now.Add(time.Second), true},
		{" 120 ", now.Add(2 * time.Minute), true},
		{"0", now, true},
		{"-1", time.Time{}, false},
		{"soon", time.Time{}, false},
		{"", time.Time{}, false},
		{"Sun, 01 Mar 2026 12:00:05 GMT", now.Add(5 * time.Second), true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if ok != tt.wantOK || !got.Equal(tt.want) {
			t.Errorf("parseRetryAfter(%q) = %v, %v, want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestRetryAfterDeadlines(t *testing.T) {
	t.Parallel()
	var ra retryAfters
	k := retryKey{"fe1", "GET", "/x"}
	before := time.Now()
	ra.note(k, "5")
	if d := ra.early(k, before); d != 0 {
		t.Errorf("request sent before the answer: early %v, want 0", d)
	}
	if d := ra.early(k, time.Now()); d < 4*time.Second {
		t.Errorf("immediate retry: early %v, want about 5s", d)
	}
	if d := ra.early(retryKey{"fe1", "POST", "/x"}, time.Now()); d != 0 {
		t.Errorf("other method: early %v, want 0", d)
	}
	if d := ra.early(retryKey{"fe2-backup", "GET", "/x"}, time.Now()); d != 0 {
		t.Errorf("other host: early %v, want 0", d)
	}
	if d := ra.early(k, time.Now().Add(5*time.Second-RetryAfterTolerance/2)); d != 0 {
		t.Errorf("within tolerance: early %v, want 0", d)
	}
	if d := ra.early(k, time.Now().Add(6*time.Second)); d != 0 || len(ra.m) != 0 {
		t.Errorf("after the deadline: early %v and %d remembered, want 0 and 0", d, len(ra.m))
	}
	ra.note(k, "Mon, 02 Jan 2006 15:04:05 GMT")
	if len(ra.m) != 0 {
		t.Error("a date in the past set a deadline")
	}
}

var earlyDetail = regexp.MustCompile(`^(\d+)ms before Retry-After$`)

// earlyBy returns how early the violations of rule retry-before-retry-after
// say their requests were, in order.
func earlyBy(t *testing.T, s *Sim) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, v := range s.Violations() {
		if v.Rule != "retry-before-retry-after" {
			t.Fatalf("unexpected violation %+v", v)
		}
		m := earlyDetail.FindStringSubmatch(v.Detail)
		if m == nil {
			t.Fatalf("violation detail %q", v.Detail)
		}
		n, _ := strconv.Atoi(m[1])
		out = append(out, time.Duration(n)*time.Millisecond)
	}
	return out
}

func TestRetryBeforeRetryAfter(t *testing.T) {
	t.Parallel()

	t.Run("seconds, faulted again and then served", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.s.Inject(Fault{Resource: "application", Status: 503, Code: "ServiceUnavailable", RetryAfter: "1", Count: 2})
		for i, want := range []int{503, 503, 200} {
			if r := b.c.do("GET", b.a.self, "", ""); r.status != want {
				t.Fatalf("GET %d = %d, want %d", i, r.status, want)
			}
		}
		// The second and third GETs came at once: both early, the second
		// although a fault answered it, the third although it was served.
		early := earlyBy(t, b.s)
		if len(early) != 2 || early[0] < 800*time.Millisecond || early[1] < 800*time.Millisecond {
			t.Fatalf("early by %v, want two of about 1s", early)
		}
		v := b.s.Violations()[0]
		if v.Method != "GET" || v.Path != mustPath(t, b.a.self) {
			t.Errorf("violation %+v, want GET of the application", v)
		}
		// Another path is not covered by the Retry-After.
		if r := b.c.do("GET", b.a.me, "", ""); r.status != http.StatusOK {
			t.Fatalf("GET me = %d", r.status)
		}
		// Honouring it (within the tolerance) is no violation.
		time.Sleep(time.Second - RetryAfterTolerance/2)
		if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusOK {
			t.Fatalf("GET after Retry-After = %d", r.status)
		}
		if n := len(b.s.Violations()); n != 2 {
			t.Errorf("%d violations, want still 2: %+v", n, b.s.Violations())
		}
	})

	t.Run("HTTP-date, query ignored", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
		b.s.Inject(Fault{Resource: "events", Status: 503, RetryAfter: date})
		r := b.c.do("GET", b.a.events, "", "")
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != date {
			t.Fatalf("P-GET = %d Retry-After %q", r.status, r.header.Get("Retry-After"))
		}
		go func() { _, _ = b.c.doErr(t.Context(), "GET", b.a.events+"&timeout=180", "", "") }()
		deadline := time.Now().Add(5 * time.Second)
		for len(b.s.Violations()) == 0 && time.Now().Before(deadline) {
			sleepBrief()
		}
		if early := earlyBy(t, b.s); len(early) != 1 || early[0] < time.Second {
			t.Fatalf("early by %v, want one of 2-3s", early)
		}
		b.s.DropEventChannel()
	})

	t.Run("discovery root", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, Config{})
		c := newClient(t)
		s.Inject(Fault{Pool: "internal", Status: 503, RetryAfter: "2"})
		root := s.DiscoveryURLs()[0]
		if r := c.do("GET", root, "", ""); r.status != http.StatusServiceUnavailable {
			t.Fatalf("root = %d", r.status)
		}
		if r := c.do("GET", s.DiscoveryURLs()[1], "", ""); r.status != http.StatusOK {
			t.Fatalf("other root = %d", r.status)
		}
		if len(s.Violations()) != 0 {
			t.Fatalf("other root: %+v", s.Violations())
		}
		if r := c.do("GET", root, "", ""); r.status != http.StatusOK {
			t.Fatalf("root again = %d", r.status)
		}
		if early := earlyBy(t, s); len(early) != 1 || early[0] < 1500*time.Millisecond {
			t.Fatalf("early by %v, want one of about 2s", early)
		}
	})
}

func TestRetryAfterNotSeen(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	// The client gives up before the slow 503 comes: it never saw the
	// Retry-After, so asking again at once is fine.
	b.s.Inject(Fault{Resource: "application", Status: 503, RetryAfter: "5", Delay: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.c.doErr(ctx, "GET", b.a.self, "", ""); err == nil {
		t.Fatal("slow fault answered within 50ms")
	}
	faultLogged := func() bool {
		for _, e := range b.s.RequestLog() {
			if e.Fault {
				return true
			}
		}
		return false
	}
	for i := 0; !faultLogged(); i++ { // logged once its answer was written
		if i > 2000 {
			t.Fatal("the faulted request was never logged")
		}
		sleepBrief()
	}
	if r := b.c.do("GET", b.a.self, "", ""); r.status != http.StatusOK {
		t.Fatalf("GET = %d", r.status)
	}
	noViolations(t, b.s)
}

func mustPath(t *testing.T, u string) string {
	t.Helper()
	r, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.URL.Path
}
