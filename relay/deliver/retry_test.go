package deliver

import (
	"testing"
	"time"
)

func TestRetryPolicyNext(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	p := RetryPolicy{Base: time.Second, Max: time.Minute, Jitter: 0.2, RetryAfterMax: 5 * time.Minute}
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
	}{
		{"first, no jitter", 1, 0, 0.5, time.Second},
		{"doubles", 3, 0, 0.5, 4 * time.Second},
		{"capped", 20, 0, 0.5, time.Minute},
		{"jitter low", 2, 0, 0, 1600 * time.Millisecond},
		{"jitter high", 2, 0, 0.9999999, 2400 * time.Millisecond},
		{"retry-after honoured", 1, 42 * time.Second, 0.5, 42 * time.Second},
		{"retry-after clamped", 1, time.Hour, 0.5, 5 * time.Minute},
	}
	for _, tt := range tests {
		got := p.Next(now, tt.attempt, tt.retryAfter, tt.rnd).Sub(now)
		if diff := got - tt.want; diff < -time.Millisecond || diff > time.Millisecond {
			t.Errorf("%s: Next(attempt %d, retryAfter %v, rnd %v) = +%v, want +%v", tt.name, tt.attempt, tt.retryAfter, tt.rnd, got, tt.want)
		}
	}
	// Defaults apply to a zero policy.
	if got := (RetryPolicy{}).Next(now, 1, 0, 0.5).Sub(now); got != 2*time.Second {
		t.Errorf("zero policy first delay = %v, want 2s", got)
	}
}
