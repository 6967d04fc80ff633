package ucwasim

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Event priorities (PROTOCOL §7.4). High releases a held P-GET at once.
const (
	prioHigh = iota
	prioMedium
	prioLow
)

// Event channel parameter defaults and bounds, in seconds (PROTOCOL §7.1).
const (
	defTimeout, minTimeout, maxTimeout = 180, 180, 1800
	defMedium, minMedium, maxMedium    = 5, 5, 1800
	defLow, minLow, maxLow             = 15, 5, 1800
)

// event is one queued event, already serialized.
type event struct {
	senderRel, senderHref string
	linkPath, typ         string
	prio                  int
	at                    time.Time
	raw                   json.RawMessage
}

// batch is one formed response; a repeated ack re-delivers its bytes.
type batch struct {
	k    int
	body []byte
}

// eventChannel is an application's P-GET state; guarded by application.mu.
type eventChannel struct {
	pending     []*event
	batches     []*batch // unacknowledged, ascending k
	formed      int      // highest batch number formed
	waiter      *pget
	timeout     int // seconds, protocol time
	medium, low int
	priority    int
	lastRelease time.Time
	resumeDue   bool
}

func (ev *eventChannel) init() {
	ev.timeout, ev.medium, ev.low, ev.priority = defTimeout, defMedium, defLow, 0
}

func (ev *eventChannel) nextAck() int { return ev.formed + 1 }

func (ev *eventChannel) oldest() int {
	if len(ev.batches) > 0 {
		return ev.batches[0].k
	}
	return ev.formed + 1
}

func (ev *eventChannel) eventsHref(path string, ack int) string {
	return path + "?ack=" + strconv.Itoa(ack)
}

// pget is a held P-GET.
type pget struct {
	ctx      context.Context
	priority int
	wake     chan struct{} // buffered 1
	replaced chan struct{} // closed when a newer P-GET takes over
	drop     chan struct{} // closed by DropEventChannel
}

// newEvent builds an event from sender (rel, path) about target (rel,
// path). Embedded is attached only when embedding is on.
func (a *application) newEvent(prio int, senderRel, senderPath, linkRel, linkPath, typ string,
	extra map[string]any, title string, embedded map[string]any,
) *event {
	p := a.p
	obj := map[string]any{
		"link": relLink{Rel: linkRel, Href: p.href(linkPath), Title: title},
		"type": typ,
	}
	for k, v := range extra {
		obj[k] = v
	}
	if embedded != nil && a.s.embed.Load() {
		obj["_embedded"] = map[string]any{linkRel: embedded}
	}
	raw, _ := json.Marshal(obj)
	return &event{senderRel: senderRel, senderHref: p.href(senderPath), linkPath: linkPath, typ: typ,
		prio: prio, at: time.Now(), raw: raw}
}

// relLink is a link with its rel, as events carry it.
type relLink struct {
	Rel   string `json:"rel"`
	Href  string `json:"href"`
	Title string `json:"title,omitempty"`
}

// enqueueLocked queues e and wakes the held P-GET.
func (a *application) enqueueLocked(e *event) {
	if a.dead != alive {
		return
	}
	if e.typ == "completed" && a.s.cfg.Collapse {
		kept := a.ev.pending[:0]
		for _, q := range a.ev.pending {
			if q.linkPath == e.linkPath && (q.typ == "started" || q.typ == "updated") {
				continue
			}
			kept = append(kept, q)
		}
		clear(a.ev.pending[len(kept):])
		a.ev.pending = kept
	}
	a.ev.pending = append(a.ev.pending, e)
	if w := a.ev.waiter; w != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// eventsResponse is an event response without events (resync).
type eventsResponse struct {
	Links map[string]hrefLink `json:"_links"`
}

// formBatchLocked turns every pending event into batch formed+1. The body
// is assembled by hand: the events are already valid JSON, and running them
// through encoding/json again would validate and compact every byte on the
// hot path.
func (a *application) formBatchLocked() *batch {
	ev := &a.ev
	ev.formed++
	k := ev.formed
	nextRel := "next"
	if ev.resumeDue {
		nextRel = "resume"
		ev.resumeDue = false
	}
	size := 128
	for _, e := range ev.pending {
		size += len(e.raw) + len(e.senderHref) + 48
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"_links":{"self":{"href":`...)
	buf = appendJSONString(buf, a.p.href(ev.eventsHref(a.eventsPath, k)))
	buf = append(buf, `},"`...)
	buf = append(buf, nextRel...)
	buf = append(buf, `":{"href":`...)
	buf = appendJSONString(buf, a.p.href(ev.eventsHref(a.eventsPath, k+1)))
	buf = append(buf, `}}`...)
	if len(ev.pending) > 0 {
		buf = append(buf, `,"sender":[`...)
		var prev *event
		for i, e := range ev.pending {
			same := prev != nil && prev.senderHref == e.senderHref && prev.senderRel == e.senderRel
			switch {
			case same:
				buf = append(buf, ',')
			case i > 0:
				buf = append(buf, `]},`...)
			}
			if !same {
				buf = append(buf, `{"rel":`...)
				buf = appendJSONString(buf, e.senderRel)
				buf = append(buf, `,"href":`...)
				buf = appendJSONString(buf, e.senderHref)
				buf = append(buf, `,"events":[`...)
			}
			buf = append(buf, e.raw...)
			prev = e
		}
		buf = append(buf, `]}]`...)
	}
	buf = append(buf, '}')
	clear(ev.pending)
	ev.pending = ev.pending[:0]
	b := &batch{k: k, body: buf}
	ev.batches = append(ev.batches, b)
	return b
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(buf, q...)
}

// releaseDueLocked reports whether pending events must be released now and,
// if not, when the earliest medium/low hold ends (zero: nothing pending).
func (a *application) releaseDueLocked(now time.Time) (bool, time.Time) {
	var earliest time.Time
	for _, e := range a.ev.pending {
		var hold time.Duration
		switch e.prio {
		case prioHigh:
			return true, time.Time{}
		case prioMedium:
			hold = time.Duration(a.ev.medium) * time.Second
		default:
			hold = time.Duration(a.ev.low) * time.Second
		}
		due := e.at.Add(a.s.scaled(hold))
		if earliest.IsZero() || due.Before(earliest) {
			earliest = due
		}
	}
	if !earliest.IsZero() && !now.Before(earliest) {
		return true, time.Time{}
	}
	return false, earliest
}

// parseEventParams reads and validates timeout/medium/low/priority.
func (a *application) parseEventParams(q map[string][]string) (timeout, medium, low, priority int, set [4]bool, bad string) {
	timeout, medium, low, priority = a.ev.timeout, a.ev.medium, a.ev.low, a.ev.priority
	get := func(name string, dst *int, lo, hi int, i int) {
		vs, ok := q[name]
		if !ok || len(vs) == 0 || bad != "" {
			return
		}
		n, err := strconv.Atoi(vs[0])
		if err != nil {
			bad = name + " is not an integer"
			return
		}
		set[i] = true
		if hi > 0 && (n < lo || n > hi) {
			if a.s.cfg.StrictEventParams {
				bad = name + " out of range"
				return
			}
			n = max(lo, min(hi, n))
		}
		*dst = n
	}
	get("timeout", &timeout, minTimeout, maxTimeout, 0)
	get("medium", &medium, minMedium, maxMedium, 1)
	get("low", &low, minLow, maxLow, 2)
	get("priority", &priority, 0, 0, 3)
	return timeout, medium, low, priority, set, bad
}

// serveEvents is the P-GET (PROTOCOL §7, §12.4).
func (p *pool) serveEvents(w *statusWriter, r *http.Request, a *application) {
	s := p.s
	q := r.URL.Query()
	ack, err := strconv.Atoi(q.Get("ack"))
	if err != nil {
		ack = -1
	}

	// Give an abandoned P-GET a moment to notice its closed connection, so a
	// client that gave up on it and re-polls is not blamed for a concurrent
	// poll.
	a.mu.Lock()
	old := a.ev.waiter
	a.mu.Unlock()
	if old != nil {
		t := time.NewTimer(25 * time.Millisecond)
		select {
		case <-old.ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}

	a.mu.Lock()
	if a.dead != alive {
		a.mu.Unlock()
		a.writeDead(w, r, false)
		return
	}
	timeout, medium, low, priority, _, bad := a.parseEventParams(q)
	if bad != "" {
		a.mu.Unlock()
		p.badParam(w, r, "bad-params", bad)
		return
	}
	now := time.Now()
	a.deathT.stop()
	a.deathT = nil

	// Silence handling: a P-GET after a long gap.
	if old = a.ev.waiter; old == nil && !a.ev.lastRelease.IsZero() {
		gap := now.Sub(a.ev.lastRelease)
		s.rec.add(func(rc *recorder) { rc.maxGap = max(rc.maxGap, gap) })
		if s.cfg.ResumeAfter > 0 && gap > s.scaled(s.cfg.ResumeAfter) {
			for _, c := range a.convs {
				c.endLocked()
			}
			a.convs = nil
			a.ev.resumeDue = true
			a.ev.init()
			timeout, medium, low, priority = a.ev.timeout, a.ev.medium, a.ev.low, a.ev.priority
		}
	}
	a.ev.timeout, a.ev.medium, a.ev.low, a.ev.priority = timeout, medium, low, priority

	// Ack model.
	oldest := a.ev.oldest()
	if ack < oldest || ack > a.ev.formed+1 {
		resp := eventsResponse{Links: map[string]hrefLink{
			"resync": link(p.href(a.ev.eventsHref(a.eventsPath, oldest))),
		}}
		a.releasedLocked(now)
		a.mu.Unlock()
		body, _ := json.Marshal(resp)
		s.violation(r.Method, r.URL.Path, "bad-ack", "ack="+q.Get("ack")+" outside ["+strconv.Itoa(oldest)+", "+strconv.Itoa(a.ev.formed+1)+"]")
		writeRaw(w, http.StatusOK, body)
		return
	}
	for len(a.ev.batches) > 0 && a.ev.batches[0].k < ack {
		a.ev.batches[0] = nil
		a.ev.batches = a.ev.batches[1:]
	}
	if ack <= a.ev.formed {
		// Repeat of an ack already answered: re-deliver the same batch.
		body := a.ev.batches[0].body
		a.releasedLocked(now)
		a.mu.Unlock()
		writeRaw(w, http.StatusOK, body)
		return
	}

	me := &pget{ctx: r.Context(), priority: priority, wake: make(chan struct{}, 1), replaced: make(chan struct{}), drop: make(chan struct{})}
	concurrent := 1
	if old != nil {
		if priority < old.priority {
			a.mu.Unlock()
			s.violation(r.Method, r.URL.Path, "concurrent-pget", "second P-GET while one is held (lower priority)")
			p.writeError(w, http.StatusConflict, "Conflict", "PGetReplaced", "A pending GET with a higher priority is outstanding.")
			return
		}
		// Record before the old P-GET can answer, so a client that sees
		// its 409 also sees the violation.
		if old.ctx.Err() == nil {
			concurrent = 2
			s.violation(r.Method, r.URL.Path, "concurrent-pget", "second P-GET while one is held; the first gets 409 PGetReplaced")
		}
		s.rec.add(func(rc *recorder) { rc.maxPGets = max(rc.maxPGets, concurrent) })
		close(old.replaced)
	} else {
		s.rec.add(func(rc *recorder) { rc.maxPGets = max(rc.maxPGets, concurrent) })
	}
	a.ev.waiter = me
	arrived := now
	holdUntil := now.Add(s.scaled(time.Duration(timeout) * time.Second))

	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		// a.mu is held here.
		if a.dead != alive {
			if a.ev.waiter == me {
				a.ev.waiter = nil
			}
			a.mu.Unlock()
			a.writeDead(w, r, true)
			return
		}
		select {
		case <-me.replaced:
			a.mu.Unlock()
			p.writeError(w, http.StatusConflict, "Conflict", "PGetReplaced", "")
			return
		default:
		}
		now = time.Now()
		due, next := a.releaseDueLocked(now)
		if due || a.ev.resumeDue || !now.Before(holdUntil) {
			var wait time.Duration
			for _, e := range a.ev.pending {
				if e.prio == prioHigh && e.at.After(arrived) {
					wait = max(wait, now.Sub(e.at))
				}
			}
			b := a.formBatchLocked()
			a.ev.waiter = nil
			a.releasedLocked(now)
			a.mu.Unlock()
			if wait > 0 {
				s.rec.add(func(rc *recorder) { rc.maxWait = max(rc.maxWait, wait) })
			}
			writeRaw(w, http.StatusOK, b.body)
			return
		}
		if next.IsZero() || next.After(holdUntil) {
			next = holdUntil
		}
		a.mu.Unlock()
		d := time.Until(next)
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-me.wake:
		case <-timer.C:
		case <-a.deadCh:
		case <-me.replaced:
		case <-me.drop:
			a.mu.Lock()
			if a.ev.waiter == me {
				a.ev.waiter = nil
				a.releasedLocked(time.Now())
			}
			a.mu.Unlock()
			w.resetConnAfter("HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n")
			return
		case <-me.ctx.Done():
			a.mu.Lock()
			if a.ev.waiter == me {
				a.ev.waiter = nil
				a.releasedLocked(time.Now())
			}
			a.mu.Unlock()
			return
		case <-s.closing:
			a.mu.Lock()
			if a.ev.waiter == me {
				a.ev.waiter = nil
			}
			a.mu.Unlock()
			p.writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "", "The server is shutting down.")
			return
		}
		a.mu.Lock()
	}
}

// releasedLocked notes a P-GET release and arms the death timer.
func (a *application) releasedLocked(now time.Time) {
	a.ev.lastRelease = now
	if a.ev.waiter == nil {
		a.armDeathLocked()
	}
}

// HeldPolls is how many event channel P-GETs the simulator holds now,
// waiting for events: a test waits for one before it drops or replaces
// them. A P-GET still in a fault's Delay or Hold is not counted.
func (s *Sim) HeldPolls() int {
	n := 0
	for _, a := range s.liveApps() {
		a.mu.Lock()
		if a.ev.waiter != nil {
			n++
		}
		a.mu.Unlock()
	}
	return n
}

// DropEventChannel resets the connection of every held P-GET.
func (s *Sim) DropEventChannel() {
	for _, a := range s.liveApps() {
		a.mu.Lock()
		if w := a.ev.waiter; w != nil {
			a.ev.waiter = nil
			close(w.drop)
			a.releasedLocked(time.Now())
		}
		a.mu.Unlock()
	}
}

// ReplacePGets acts as a rogue second client: every held P-GET is released
// with 409 Conflict/PGetReplaced (preset of PROTOCOL §12.7). The client's
// next P-GET is served normally.
func (s *Sim) ReplacePGets() {
	for _, a := range s.liveApps() {
		a.mu.Lock()
		if w := a.ev.waiter; w != nil {
			a.ev.waiter = nil
			close(w.replaced)
			a.releasedLocked(time.Now())
		}
		a.mu.Unlock()
	}
}
