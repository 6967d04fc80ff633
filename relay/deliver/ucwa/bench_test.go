package ucwa

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

// benchSetup starts a simulator and a started client for benchmarks; both
// are closed at the end of the benchmark.
func benchSetup(b *testing.B, timers Timers) (*ucwasim.Sim, *Client) {
	b.Helper()
	sim, c, closeFn := benchStart(b, timers)
	b.Cleanup(closeFn)
	return sim, c
}

// benchStart starts a simulator and a started client and returns their
// closer.
func benchStart(b *testing.B, timers Timers) (*ucwasim.Sim, *Client, func()) {
	b.Helper()
	sim, err := ucwasim.New(ucwasim.Config{Username: testUser, Password: testPassword, TimeScale: 0.01, EmbedResources: true})
	if err != nil {
		b.Fatalf("ucwasim.New: %v", err)
	}
	c, err := New(Config{Username: testUser, Password: testPassword, DiscoveryURLs: sim.DiscoveryURLs(), Timers: timers},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	closeFn := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
		sim.Close()
	}
	if err := c.Start(context.Background()); err != nil {
		closeFn()
		b.Fatalf("Start: %v", err)
	}
	return sim, c, closeFn
}

// BenchmarkSend measures confirmed messages per second through one session
// over 1, 10 and 100 conversations (one sender goroutine per conversation,
// as the deliver worker keeps one in-flight send per conversation).
func BenchmarkSend(b *testing.B) {
	for _, convs := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("conversations=%d", convs), func(b *testing.B) {
			sim, c := benchSetup(b, testTimers())
			targets := make([]relay.Target, convs)
			for i := range targets {
				targets[i] = target(i)
				if out, _ := c.Send(context.Background(), targets[i], fmt.Sprintf("warm-%d", i), "warm up"); out.Kind != relay.Delivered {
					b.Fatalf("warm-up send = %+v", out)
				}
			}
			var next, delivered, other atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i := range convs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						out, err := c.Send(context.Background(), targets[i], fmt.Sprintf("b-%d", n), "benchmark message")
						if err == nil && out.Kind == relay.Delivered {
							delivered.Add(1)
						} else {
							other.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if other.Load() > 0 {
				b.Errorf("%d of %d sends not delivered", other.Load(), b.N)
			}
			b.ReportMetric(float64(delivered.Load())/elapsed.Seconds(), "msgs/s")
			_ = sim
		})
	}
}

// BenchmarkFailover measures the time from the home pool answering 410
// CannotRedirect to the first message confirmed on the backup pool, with
// the failover backoff set to ~0 so only the client's own work counts.
func BenchmarkFailover(b *testing.B) {
	timers := testTimers()
	timers.FailoverMin, timers.FailoverMax = time.Microsecond, time.Microsecond
	timers.RetryMin = time.Microsecond
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sim, c, closeFn := benchStart(b, timers)
		tg := target(1)
		if out, _ := c.Send(context.Background(), tg, "pre", "before"); out.Kind != relay.Delivered {
			b.Fatalf("send before failover = %+v", out)
		}
		pools := sim.PoolNames()
		b.StartTimer()
		start := time.Now()
		sim.SetHomePool(pools[1])
		sim.PoolGone(pools[0])
		for n := 0; ; n++ {
			out, err := c.Send(context.Background(), tg, fmt.Sprintf("post-%d", n), "after")
			if err != nil {
				b.Fatalf("Send: %v", err)
			}
			if out.Kind == relay.Delivered {
				if out.Pool != hostOf(sim.PoolURL(pools[1])) {
					b.Fatalf("delivered on %s, want the backup pool", out.Pool)
				}
				break
			}
			if n > 1000 {
				closeFn()
				b.Fatalf("no delivery after failover; last %+v", out)
			}
			time.Sleep(100 * time.Microsecond)
		}
		total += time.Since(start)
		b.StopTimer()
		closeFn()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
}

func hostOf(u string) string {
	return u[len("http://"):]
}
