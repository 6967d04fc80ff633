package ingest

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	t.Parallel()
	l := newLogLimiter(time.Minute)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	steps := []struct {
		key      string
		at       time.Duration
		wantOK   bool
		wantHeld int
	}{
		{"prod", 0, true, 0},
		{"prod", time.Second, false, 0},
		{"prod", 59 * time.Second, false, 0},
		{"staging", 59 * time.Second, true, 0}, // keys are apart
		{"prod", time.Minute, true, 2},         // says what it held back
		{"prod", time.Minute + time.Second, false, 0},
		{"prod", 3 * time.Minute, true, 1},
		{"prod", 5 * time.Minute, true, 0},
	}
	for i, s := range steps {
		ok, held := l.allow(s.key, t0.Add(s.at))
		if ok != s.wantOK || held != s.wantHeld {
			t.Errorf("step %d: allow(%q, +%s) = %v, %d; want %v, %d", i, s.key, s.at, ok, held, s.wantOK, s.wantHeld)
		}
	}
}
