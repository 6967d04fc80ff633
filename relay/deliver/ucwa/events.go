package ucwa

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/skype-relay/relay/relay/backoff"
)

// eventBatch is one event channel answer (PROTOCOL §7.2).
type eventBatch struct {
	Links  map[string]halLink `json:"_links"`
	Sender []struct {
		Rel    string  `json:"rel"`
		Href   string  `json:"href"`
		Events []event `json:"events"`
	} `json:"sender"`
}

type event struct {
	Link struct {
		Rel  string `json:"rel"`
		Href string `json:"href"`
	} `json:"link"`
	Type     string      `json:"type"`
	Status   string      `json:"status"`
	Reason   *ucwaError  `json:"reason"`
	Embedded embeddedSet `json:"_embedded"`

	// Filled in before dispatch, outside the dispatch lock.
	href   string       // Link.Href resolved
	sender string       // sender href resolved, for conversation senders
	res    *halResource // the embedded resource for Link.Rel, or nil
}

// embeddedSet holds the embedded resources the relay reads, decoded in
// one pass with the event.
type embeddedSet struct {
	Message             *halResource `json:"message"`
	MessagingInvitation *halResource `json:"messagingInvitation"`
	Messaging           *halResource `json:"messaging"`
	Conversation        *halResource `json:"conversation"`
}

// embedded returns the event's embedded resource, if any.
func (e *event) embedded() *halResource {
	switch e.Link.Rel {
	case "message":
		return e.Embedded.Message
	case "messagingInvitation":
		return e.Embedded.MessagingInvitation
	case "messaging":
		return e.Embedded.Messaging
	case "conversation":
		return e.Embedded.Conversation
	}
	return nil
}

// completion is the outcome an operation's completed event carries.
type completion struct {
	status string // "Success" or "Failure"
	reason ucwaError
	res    *halResource // embedded resource, may be nil
}

const maxOrphans = 4096

// dispatch correlates events with the sends and invitations waiting for
// them. Guarded by mu; the event loop holds it for one batch at a time and
// never blocks under it.
type dispatch struct {
	mu         sync.Mutex
	waitByOp   map[string]*waiter // message operationId
	waitByHref map[string]*waiter // message Location
	invByOp    map[string]*conv   // invitation operationId
	invByHref  map[string]*conv   // invitation Location
	convByHref map[string]*conv   // conversation and messaging hrefs
	convByTID  map[string]*conv   // threadId
	// orphans keeps completions that came before the 201 told us their
	// href (bare links, §6.3): the waiter picks them up when it learns it.
	orphans     map[string]completion
	orphanOrder []string
}

func (d *dispatch) init() {
	d.waitByOp = map[string]*waiter{}
	d.waitByHref = map[string]*waiter{}
	d.invByOp = map[string]*conv{}
	d.invByHref = map[string]*conv{}
	d.convByHref = map[string]*conv{}
	d.convByTID = map[string]*conv{}
	d.orphans = map[string]completion{}
}

func (d *dispatch) addOrphan(href string, c completion) {
	if _, ok := d.orphans[href]; !ok {
		d.orphanOrder = append(d.orphanOrder, href)
	}
	d.orphans[href] = c
	for len(d.orphanOrder) > maxOrphans {
		delete(d.orphans, d.orphanOrder[0])
		d.orphanOrder = d.orphanOrder[1:]
	}
}

func (d *dispatch) takeOrphan(href string) (completion, bool) {
	c, ok := d.orphans[href]
	if ok {
		delete(d.orphans, href)
	}
	return c, ok
}

// pollEvents keeps exactly one long poll outstanding for the life of the
// session (§7): it follows next, resync and resume, and fails the session
// on the answers that mean the application or the pool is gone (through
// do). After an error it re-sends the same URL: when the answer carried a
// Retry-After, at that time and no later, so that confirmations flow again
// as soon as a storm ends; after other errors with backoff (1 s doubling
// to 30 s by default), never before the host's Retry-After.
func (s *session) pollEvents() {
	defer s.wg.Done()
	log := s.c.log.With("pool", s.pool, "generation", s.gen)
	u := s.events
	retry := backoff.Counter{Policy: backoff.Policy{
		Min: s.c.timers.RetryMin, Max: min(s.c.timers.RetryMax, 30*time.Second), Jitter: 0.2}}
	abandoned := false // the previous poll ended on our side, it may still be held
	timeoutParam := strconv.Itoa(int(s.c.timers.EventTimeout / time.Second))
	for s.ctx.Err() == nil {
		pu := u
		if !hasQuery(pu, "timeout") {
			pu = withQuery(pu, "timeout", timeoutParam)
		}
		if s.stopPolling.Load() {
			return
		}
		s.pollSentNano.Store(time.Now().UnixNano())
		resp, err := s.do(s.ctx, http.MethodGet, pu, resEvents, "", nil, flagPGet|flagWait)
		if s.ctx.Err() != nil || s.isDead() || s.stopPolling.Load() {
			return
		}
		var batch eventBatch
		if err == nil {
			if derr := decodeJSON(resp.body, &batch); derr != nil {
				err = derr
			}
		}
		if err != nil {
			var ae *apiError
			immediate := false
			if errors.As(err, &ae) && ae.Status == http.StatusConflict && ae.Subcode == "PGetReplaced" {
				if abandoned {
					log.Debug("event channel replaced by our own retry")
					immediate = true
				} else {
					log.Error("event channel replaced by another client: another instance uses this application")
				}
			} else {
				log.Warn("event channel request failed", "err", err, "attempt", retry.Failures()+1)
			}
			abandoned = errors.As(err, &ae) && ae.Status == 0
			if !immediate {
				var d time.Duration
				if ae != nil && ae.RetryAfter > 0 && resp != nil && resp.header.Get("Retry-After") != "" {
					// The server said when; the gate holds the poll until
					// then anyway, this spares a wake-up.
					d = ae.RetryAfter
				} else {
					d = retry.Next()
					if ae != nil {
						d = max(d, ae.RetryAfter) // the gate's own pause after a 429 or 503
					}
				}
				if !backoff.Sleep(s.ctx, d) {
					return
				}
			}
			continue // same URL, same ack: nothing is lost
		}
		retry.Reset()
		abandoned = false
		s.lastPollNano.Store(time.Now().UnixNano())
		s.healthy.Store(true)
		next := batch.Links["next"].Href
		if h := batch.Links["resume"].Href; h != "" {
			log.Warn("event channel resumed: the server dropped our conversations")
			next = h
			s.dropAllConversations()
		} else if h := batch.Links["resync"].Href; h != "" {
			log.Error("event channel resync: acknowledgement out of range")
			next = h
			s.dropAllConversations()
		}
		s.dispatchBatch(&batch)
		nu, err := resolve(s.apps, next)
		if err != nil {
			log.Error("event channel answer without a usable next link", "err", err)
			if !backoff.Sleep(s.ctx, retry.Next()) {
				return
			}
			continue
		}
		u = nu
	}
}

// abs resolves an href from an event to the absolute form used as map key.
func (s *session) abs(href string) string {
	if href == "" {
		return ""
	}
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	return s.apps.ResolveReference(u).String()
}

func (s *session) dispatchBatch(b *eventBatch) {
	// Resolve hrefs first: Send goroutines contend for the lock.
	for i := range b.Sender {
		snd := &b.Sender[i]
		sender := ""
		if snd.Rel == "conversation" {
			sender = s.abs(snd.Href)
		}
		for j := range snd.Events {
			ev := &snd.Events[j]
			ev.sender, ev.href, ev.res = sender, s.abs(ev.Link.Href), ev.embedded()
		}
	}
	d := &s.disp
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range b.Sender {
		for j := range b.Sender[i].Events {
			s.handleEventLocked(&b.Sender[i].Events[j])
		}
	}
}

func (s *session) handleEventLocked(ev *event) {
	d := &s.disp
	href, sender, res := ev.href, ev.sender, ev.res
	switch ev.Link.Rel {
	case "messagingInvitation":
		var cv *conv
		if res != nil && res.OperationID != "" {
			cv = d.invByOp[res.OperationID]
		}
		if cv == nil {
			cv = d.invByHref[href]
		}
		if cv == nil {
			if ev.Type == "completed" && href != "" {
				d.addOrphan(href, completion{status: ev.Status, reason: reasonOf(ev), res: res})
			}
			return
		}
		s.learnInvitationLocked(cv, res)
		if ev.Type == "completed" {
			cv.completeInvite(completion{status: ev.Status, reason: reasonOf(ev), res: res})
		}
	case "conversation":
		cv := d.convByHref[href]
		if cv == nil && res != nil && res.ThreadID != "" {
			if cv = d.convByTID[res.ThreadID]; cv != nil {
				s.bindLocked(cv, href, s.abs(res.link("messaging")))
			}
		}
		if cv == nil {
			return
		}
		if ev.Type == "deleted" || (res != nil && res.State == "Disconnected") {
			s.dropLocked(cv, "conversation ended")
		}
	case "messaging":
		cv := d.convByHref[href]
		if cv == nil && sender != "" {
			cv = d.convByHref[sender]
		}
		if cv == nil {
			return
		}
		switch {
		case res == nil:
			cv.stale = true // bare link: read the state before the next send
		case res.State == "Connected":
			if u := s.abs(res.link("sendMessage")); u != "" {
				cv.sendMessage, _ = url.Parse(u)
				cv.connected, cv.stale = true, false
			}
		case res.State == "Disconnected":
			s.dropLocked(cv, "messaging disconnected")
		}
	case "participant", "localParticipant":
		if ev.Type == "deleted" && sender != "" {
			if cv := d.convByHref[sender]; cv != nil {
				s.dropLocked(cv, "participant left")
			}
		}
	case "message":
		if ev.Type != "completed" {
			return
		}
		if res != nil && res.Direction == "Incoming" {
			return
		}
		c := completion{status: ev.Status, reason: reasonOf(ev), res: res}
		var w *waiter
		if res != nil && res.OperationID != "" {
			w = d.waitByOp[res.OperationID]
		}
		if w == nil && href != "" {
			w = d.waitByHref[href]
		}
		if w == nil {
			if (res == nil || res.OperationID == "") && href != "" {
				d.addOrphan(href, c)
			}
			return
		}
		w.completeLocked(d, c)
	}
}

func reasonOf(ev *event) ucwaError {
	if ev.Reason == nil {
		return ucwaError{}
	}
	return *ev.Reason
}
