package backoff

import (
	"context"
	"testing"
	"time"
)

func TestPolicyAt(t *testing.T) {
	t.Parallel()
	p := Policy{Min: time.Second, Max: time.Minute, Jitter: 0.2}
	tests := []struct {
		n    int
		rnd  float64
		want time.Duration
	}{
		{0, 0.5, time.Second},
		{1, 0.5, 2 * time.Second},
		{3, 0.5, 8 * time.Second},
		{6, 0.5, time.Minute}, // 64 s capped
		{1000, 0.5, time.Minute},
		{1, 0, 1600 * time.Millisecond},
		{1, 1, 2400 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := p.At(tt.n, tt.rnd); got != tt.want {
			t.Errorf("At(%d, %v) = %v, want %v", tt.n, tt.rnd, got, tt.want)
		}
	}
	if got := (Policy{Min: time.Second}).At(5, 0.5); got != time.Second {
		t.Errorf("Max 0 means Min: got %v", got)
	}
	if got := (Policy{}).At(3, 0.9); got != 0 {
		t.Errorf("zero policy: got %v", got)
	}
	for range 1000 {
		if d := p.Delay(2); d < 3200*time.Millisecond || d > 4800*time.Millisecond {
			t.Fatalf("Delay(2) = %v, outside 4s ± 20%%", d)
		}
	}
}

func TestCounter(t *testing.T) {
	t.Parallel()
	c := Counter{Policy: Policy{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}}
	var got []time.Duration
	for range 4 {
		got = append(got, c.Next())
	}
	want := []time.Duration{10, 20, 40, 40}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	if c.Failures() != 4 {
		t.Errorf("Failures = %d, want 4", c.Failures())
	}
	c.Reset()
	if d := c.Next(); d != 10*time.Millisecond {
		t.Errorf("after Reset: %v, want 10ms", d)
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep with a live context returned false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep with an ended context returned true")
	}
}
