package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/skype-relay/relay/relay/alertmanager"
)

// FingerprintMismatch says that a notification's sender wrote fingerprints
// that are not the ones Alertmanager computes from the alerts' labels. relay
// uses the computed ones (in the dedup key and the templates); a mismatch is
// only logged and counted: a sender other than Alertmanager that invents
// fingerprints, or one trying to pass new alerts off as duplicates.
type FingerprintMismatch struct {
	// Alerts counts the alerts of the notification whose fingerprint
	// disagrees.
	Alerts int
	// Index, Sent and Computed describe the first of them.
	Index          int
	Sent, Computed string
}

// fingerprintMismatch returns what disagrees in m, nil when nothing does.
func fingerprintMismatch(m *alertmanager.Message) *FingerprintMismatch {
	var out *FingerprintMismatch
	for i, a := range m.Alerts {
		if !a.FingerprintMismatch() {
			continue
		}
		if out == nil {
			out = &FingerprintMismatch{Index: i, Sent: a.SentFingerprint, Computed: a.Fingerprint}
		}
		out.Alerts++
	}
	return out
}

// mismatchLogEvery is how often, at most, a route's fingerprint mismatches
// are logged: a sender that always gets them wrong must not flood the log.
// The counter counts every one.
const mismatchLogEvery = time.Minute

// logLimiter lets a message through at most once per interval per key,
// and counts what it held back meanwhile.
type logLimiter struct {
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether key may log now, and how many of its messages
// were held back since it last did.
func (l *logLimiter) allow(key string, now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, seen := l.last[key]; seen && now.Sub(last) < l.every {
		l.held[key]++
		return false, 0
	}
	held = l.held[key]
	l.last[key] = now
	delete(l.held, key)
	return true, held
}

// noteFingerprints counts the alerts of a notification on route whose
// sender-written fingerprint disagrees, and logs it (at most once a minute
// per route).
func (h *Handler) noteFingerprints(ctx context.Context, route string, fm *FingerprintMismatch) {
	if fm == nil {
		return
	}
	h.metrics.fingerprintMismatches.WithLabelValues(route).Add(float64(fm.Alerts))
	ok, held := h.mismatchLog.allow(route, time.Now())
	if !ok {
		return
	}
	h.logger.WarnContext(ctx, "webhook alerts carry fingerprints that do not match their labels; relay uses the computed ones",
		slog.String("route", route), slog.Int("alerts", fm.Alerts), slog.Int("alert_index", fm.Index),
		slog.String("sent", auditValue(fm.Sent)), slog.String("computed", fm.Computed),
		slog.Int("notifications_not_logged", held))
}
