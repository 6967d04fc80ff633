package ingest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skype-relay/relay/relay"
)

// inflight counts the request-body bytes the webhook endpoint holds. A
// request reserves its declared size before its body is read and gives it
// back once answered; one that does not fit under the limit is answered
// 503 at once, its body unread. However many senders arrive together, the
// bodies in memory stay under the limit, and the senders retry.
//
// What a request holds beyond its body is bounded otherwise: decoding and
// rendering are CPU work, done by a few requests at a time (prepareSlots),
// and a group commit carries at most batch_max_bytes.
type inflight struct {
	used     atomic.Int64
	rejected prometheus.Counter
}

func newInflight() *inflight {
	return &inflight{rejected: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relay_ingest_inflight_rejected_total",
		Help: "Webhook requests answered 503 at once because their bodies would have taken the bytes held beyond ingest.max_inflight_bytes.",
	})}
}

// collectors are the metrics of f, to register.
func (f *inflight) collectors() []prometheus.Collector {
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "relay_ingest_inflight_bytes",
		Help: "Request-body bytes the webhook endpoint holds now, counted by declared size (see ingest.max_inflight_bytes).",
	}, func() float64 { return float64(f.used.Load()) })
	return []prometheus.Collector{held, f.rejected}
}

// reserve takes n bytes if the bytes held stay within limit.
func (f *inflight) reserve(n, limit int64) bool {
	for {
		used := f.used.Load()
		if used+n > limit {
			f.rejected.Inc()
			return false
		}
		if f.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (f *inflight) release(n int64) { f.used.Add(-n) }

// errOverloaded answers a request refused by the in-flight limit.
var errOverloaded = fmt.Errorf("%w: too many request bodies in flight (ingest.max_inflight_bytes)", relay.ErrUnavailable)

// declaredSize is what a request's body may take: its Content-Length, or
// the largest body accepted when the length is not declared (chunked).
func declaredSize(r *http.Request, maxBody int64) int64 {
	if r.ContentLength >= 0 {
		return r.ContentLength
	}
	return maxBody
}

// readBody reads a body of at most limit bytes. A declared length is read
// into a buffer of exactly that size, where io.ReadAll would grow one by
// doubling and leave the smaller copies as garbage.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength < 0 {
		return io.ReadAll(rd)
	}
	body := make([]byte, r.ContentLength)
	_, err := io.ReadFull(rd, body)
	return body, err
}

// answerFirst makes sure a webhook sender sees the answer to a request
// answered before its body was read: refused by the in-flight limit, too
// large, unauthorized. net/http would close the connection with the body
// unread, and the reset that follows can destroy the answer before the
// sender has read it: it sees a connection closed without an answer. So
// the answer is written and flushed first; the rest of the body is then
// read and thrown away (up to twice max_body_bytes, within read_timeout),
// keeping nothing of it, and the connection ends cleanly or serves the
// next request. (Such answers carry a Content-Length, see handleError, so
// that they are complete before the body is.)
func (h *Handler) answerFirst(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		rc := http.NewResponseController(c.Response())
		// Without this, net/http reads or drops the unread body as soon as
		// the answer starts, before the answer is sent.
		_ = rc.EnableFullDuplex()
		if err := next(c); err != nil {
			c.Error(err)
		}
		if body.eof || r.ContentLength >= 0 && body.n >= r.ContentLength || r.Header.Get("Expect") != "" {
			// Read to the end; or a sender waiting for "100 Continue",
			// which sends no body after a final answer.
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		_, _ = io.CopyN(io.Discard, body, 2*h.cfg.Load().MaxBodyBytes)
		return nil
	}
}

// countingBody is a request body that knows how much of it was read.
type countingBody struct {
	io.ReadCloser
	n   int64
	eof bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	b.eof = b.eof || err == io.EOF
	return n, err
}

// prepare is cfg.Prepare, run by at most prepareSlots requests at once.
// Decoding and rendering a body takes several times its size in memory
// for a while (a 1 MiB Alertmanager notification of 1000 alerts, about
// 6 MB), and it is CPU work: more of it at once than there are CPUs
// finishes none sooner, but holds that much more memory. A request waits
// for a slot until its deadline.
func (h *Handler) prepare(ctx context.Context, cfg *Config, route *Route, hdr http.Header, body []byte) (*Prepared, error) {
	select {
	case h.prepareSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait to decode the body: %w: %w", relay.ErrUnavailable, ctx.Err())
	}
	defer func() { <-h.prepareSlots }()
	return cfg.Prepare(route, hdr, body)
}

// prepareSlots is how many requests decode and render at once.
func prepareSlots() int { return runtime.GOMAXPROCS(0) }
