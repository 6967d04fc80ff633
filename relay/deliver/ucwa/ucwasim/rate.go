package ucwasim

import (
	"sync"
	"time"
)

// maxRateSamples bounds the arrival times kept per host (800 KB at most).
const maxRateSamples = 100_000

// hostRate keeps the arrival times of one host's requests, as offsets from
// the simulator's start (monotonic, so never out of order), and the
// largest number that arrived within one second.
type hostRate struct {
	mu    sync.Mutex
	times []time.Duration // ring of the last maxRateSamples arrivals
	n     int             // arrivals ever; arrival i is times[i%len(times)]
	lo    int             // first arrival less than a second before the latest
	max   int
}

// add records one arrival now; start is the simulator's start. The time is
// read under the lock, so arrivals are kept in order.
func (h *hostRate) add(start time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := time.Since(start)
	if len(h.times) < maxRateSamples {
		h.times = append(h.times, t)
	} else {
		h.times[h.n%maxRateSamples] = t
	}
	h.n++
	h.lo = max(h.lo, h.n-len(h.times))
	for t-h.times[h.lo%len(h.times)] >= time.Second {
		h.lo++
	}
	h.max = max(h.max, h.n-h.lo)
}

// retained returns the kept arrival offsets, oldest first.
func (h *hostRate) retained() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]time.Duration, 0, len(h.times))
	for i := h.n - len(h.times); i < h.n; i++ {
		out = append(out, h.times[i%len(h.times)])
	}
	return out
}

// maxPerSecond returns the largest number of sorted offsets that lie
// within less than one second of each other.
func maxPerSecond(ts []time.Duration) int {
	best, lo := 0, 0
	for hi, t := range ts {
		for t-ts[lo] >= time.Second {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// noteArrival counts one request to host ("internal", "external" or a
// pool name) for the request rate.
func (s *Sim) noteArrival(host string) {
	if h := s.rates[host]; h != nil {
		h.add(s.started)
	}
}

// RequestRate returns, over the requests to host ("internal", "external"
// or a pool name, as LogEntry.Host) that arrived in [from, to), the
// largest number that arrived within any one second (a sliding window)
// and their total. A zero to means no end. Every request reaching a root
// or pool listener counts (token endpoint, faulted and reset ones
// included; the control API does not); only the last 100,000 arrivals per
// host are kept.
func (s *Sim) RequestRate(host string, from, to time.Time) (maxPerSec, total int) {
	h := s.rates[host]
	if h == nil {
		return 0, 0
	}
	var in []time.Duration
	for _, t := range h.retained() {
		at := s.started.Add(t)
		if at.Before(from) || (!to.IsZero() && !at.Before(to)) {
			continue
		}
		in = append(in, t)
	}
	return maxPerSecond(in), len(in)
}

// maxRates returns Stats.MaxRequestsPerSecond.
func (s *Sim) maxRates() map[string]int {
	out := make(map[string]int, len(s.rates))
	for name, h := range s.rates {
		h.mu.Lock()
		out[name] = h.max
		h.mu.Unlock()
	}
	return out
}
