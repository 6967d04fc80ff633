package deliver

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/store"
)

// journal keeps the outcomes of sends that could not be recorded because
// the database was unreachable, until it can take them. Without it, a send
// the server had confirmed would look abandoned once its lease ran out, and
// be sent again as "(resent)". The worker claims nothing while the journal
// holds anything, so its size is bounded by the sends in flight.
type journal struct {
	mu      sync.Mutex
	entries map[string]journalEntry // by operationId and attempt
}

type journalEntry struct {
	c store.Claimed
	f store.Finish
}

func (j *journal) add(c store.Claimed, f store.Finish) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.entries == nil {
		j.entries = map[string]journalEntry{}
	}
	f.ClaimNext = nil
	f.Late = true
	f.Carried = slices.Clone(f.Carried) // the entry's own: flushes change it
	for i := range f.Carried {
		f.Carried[i].Late = true
	}
	j.entries[c.OperationID+"."+strconv.Itoa(c.Attempt)] = journalEntry{c: c, f: f}
}

func (j *journal) len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries)
}

// list copies the entries (nil when there is none: the worker asks before
// every claim).
func (j *journal) list() map[string]journalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.entries) == 0 {
		return nil
	}
	out := make(map[string]journalEntry, len(j.entries))
	for k, e := range j.entries {
		out[k] = e
	}
	return out
}

func (j *journal) remove(key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.entries, key)
}

// flushJournal writes every kept outcome, and reports whether the journal
// is empty afterwards. It stops while the database is unavailable; an
// outcome the database refuses for another reason (a bug) is logged and
// dropped, so that it cannot stop claiming for good.
func (w *Worker) flushJournal(ctx context.Context) bool {
	entries := w.journal.list()
	if len(entries) == 0 {
		return true
	}
	defer func() { w.m.unrecorded.Set(float64(w.journal.len())) }()
	for key, e := range entries {
		e.f.Now = w.opts.Now()
		res, err := w.db.Finish(ctx, e.f)
		if err != nil && !errors.Is(err, relay.ErrUnavailable) && e.f.Record != nil {
			// The state matters more than the audit row: try without it.
			w.log.ErrorContext(ctx, "could not record a kept delivery attempt; recording its outcome without it",
				slog.String("operation_id", e.c.OperationID), slog.Int("attempt", e.c.Attempt), slog.Any("err", err))
			e.f = e.f.WithoutRecords() // a copy: the journal's stays whole
			res, err = w.db.Finish(ctx, e.f)
		}
		if err != nil && !errors.Is(err, relay.ErrUnavailable) {
			w.log.ErrorContext(ctx, "could not record a kept delivery outcome; the delivery will be sent again after its lease",
				slog.String("operation_id", e.c.OperationID), slog.Int("attempt", e.c.Attempt), slog.Any("err", err))
			w.journal.remove(key)
			continue
		}
		if err != nil {
			w.log.DebugContext(ctx, "write kept delivery outcomes", slog.Int("kept", len(entries)), slog.Any("err", err))
			return false
		}
		w.journal.remove(key)
		w.log.InfoContext(ctx, "delivery outcome recorded after the database came back",
			slog.String("operation_id", e.c.OperationID), slog.Int("attempt", e.c.Attempt),
			slog.String("state", string(e.f.State)), slog.Bool("applied", res.Recorded))
		if res.Recorded {
			w.m.finished.WithLabelValues(string(e.f.State)).Inc()
		}
		for i, cf := range e.f.Carried {
			if i < len(res.CarriedRecorded) && res.CarriedRecorded[i] {
				w.m.finished.WithLabelValues(string(cf.State)).Inc()
			}
		}
	}
	return w.journal.len() == 0
}

// Unrecorded lists the deliveries whose outcome is kept in memory,
// waiting for the database ("operationId.attempt").
func (w *Worker) Unrecorded() []string {
	entries := w.journal.list()
	out := make([]string, 0, len(entries))
	for k, e := range entries {
		out = append(out, k)
		for _, cf := range e.f.Carried { // the deliveries its message carried
			out = append(out, cf.OperationID+"."+strconv.Itoa(cf.Attempt))
		}
	}
	return out
}
