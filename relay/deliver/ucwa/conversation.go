package ucwa

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/skype-relay/relay/relay"
)

// laneKey identifies a conversation target; the recipient is compared
// case-insensitively.
type laneKey relay.Target

// keyOf is t's lane key.
func keyOf(t relay.Target) laneKey {
	k := laneKey(t)
	k.To = strings.ToLower(strings.TrimSpace(k.To))
	return k
}

// lane serializes the sends to one target in call order and remembers the
// target's conversation. A buffered channel of one is the lock: blocked
// senders on a channel are served first in, first out.
type lane struct {
	key   laneKey
	sem   chan struct{}
	users int   // Sends holding or waiting for sem; guarded by Client.lanesMu
	conv  *conv // only touched by the holder of sem
}

// lane returns the target's lane, registering the caller as a user; every
// call is paired with releaseLane.
func (c *Client) lane(t relay.Target) *lane {
	k := keyOf(t)
	c.lanesMu.Lock()
	defer c.lanesMu.Unlock()
	l, ok := c.lanes[k]
	if !ok {
		l = &lane{key: k, sem: make(chan struct{}, 1)}
		c.lanes[k] = l
	}
	l.users++
	return l
}

// releaseLane unregisters a user and forgets the lane once nobody uses it
// and it holds no live conversation, so the map stays as small as the set
// of targets with open conversations.
func (c *Client) releaseLane(l *lane) {
	c.lanesMu.Lock()
	defer c.lanesMu.Unlock()
	l.users--
	if l.users > 0 {
		return
	}
	if cv := l.conv; cv != nil {
		cv.sess.disp.mu.Lock()
		dead := cv.dead
		cv.sess.disp.mu.Unlock()
		if !dead && !cv.sess.isDead() {
			return
		}
	}
	delete(c.lanes, l.key)
}

// conv is one peer-to-peer messaging conversation on one session. Its
// fields after target are guarded by the session's dispatch mutex.
type conv struct {
	sess     *session
	target   relay.Target
	opID     string // invitation operationId
	threadID string

	inviteHref  string
	convHref    string
	msgHref     string
	cancelHref  string
	sendMessage *url.URL
	connected   bool // messaging reported Connected
	stale       bool // a bare messaging event came: read the state again
	dead        bool

	inviteDone chan struct{}
	invited    bool
	result     completion
}

// completeInvite records the invitation's completed event; caller holds
// the dispatch mutex.
func (cv *conv) completeInvite(c completion) {
	if cv.invited {
		return
	}
	cv.invited = true
	cv.result = c
	close(cv.inviteDone)
}

// learnInvitationLocked takes the conversation and messaging links from an
// invitation resource.
func (s *session) learnInvitationLocked(cv *conv, res *halResource) {
	if res == nil {
		return
	}
	if h := s.abs(res.link("cancel")); h != "" {
		cv.cancelHref = h
	}
	s.bindLocked(cv, s.abs(res.link("conversation")), s.abs(res.link("messaging")))
}

// bindLocked maps a conversation's hrefs to it, for event dispatch.
func (s *session) bindLocked(cv *conv, convHref, msgHref string) {
	if convHref != "" && cv.convHref == "" {
		cv.convHref = convHref
		s.disp.convByHref[convHref] = cv
	}
	if msgHref != "" && cv.msgHref == "" {
		cv.msgHref = msgHref
		s.disp.convByHref[msgHref] = cv
	}
}

// dropLocked forgets a conversation: the next send to its target invites
// again.
func (s *session) dropLocked(cv *conv, why string) {
	if cv.dead {
		return
	}
	cv.dead = true
	d := &s.disp
	for _, h := range []string{cv.convHref, cv.msgHref} {
		if h != "" && d.convByHref[h] == cv {
			delete(d.convByHref, h)
		}
	}
	if d.convByTID[cv.threadID] == cv {
		delete(d.convByTID, cv.threadID)
	}
	s.c.log.Debug("conversation dropped", "pool", s.pool, "why", why)
}

func (s *session) drop(cv *conv, why string) {
	s.disp.mu.Lock()
	s.dropLocked(cv, why)
	s.disp.mu.Unlock()
}

// dropAllConversations follows a resume or resync: every conversation is
// assumed gone (§7.3).
func (s *session) dropAllConversations() {
	s.disp.mu.Lock()
	defer s.disp.mu.Unlock()
	seen := map[*conv]bool{}
	for _, cv := range s.disp.convByHref {
		seen[cv] = true
	}
	for _, cv := range s.disp.convByTID {
		seen[cv] = true
	}
	for cv := range seen {
		s.dropLocked(cv, "event channel resumed")
	}
}

// conversation returns a ready conversation for the lane's target on this
// session, reusing the cached one while it is connected (§5.4).
func (s *session) conversation(ctx context.Context, l *lane, t relay.Target) (*conv, *step) {
	if cv := l.conv; cv != nil && cv.sess == s {
		s.disp.mu.Lock()
		ok := !cv.dead && cv.connected && cv.sendMessage != nil
		stale := cv.stale
		s.disp.mu.Unlock()
		if ok && !stale {
			return cv, nil
		}
		if ok && s.readMessaging(ctx, cv) == nil {
			return cv, nil
		}
	}
	l.conv = nil
	cv, st := s.invite(ctx, t)
	if st != nil {
		return nil, st
	}
	l.conv = cv
	return cv, nil
}

func newID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// invite starts a messaging conversation (§5) and waits until it can carry
// messages: messaging Connected with a sendMessage link.
func (s *session) invite(ctx context.Context, t relay.Target) (*conv, *step) {
	cv := &conv{sess: s, target: t, opID: newID("inv-", 12), threadID: newID("", 16), inviteDone: make(chan struct{})}
	d := &s.disp
	d.mu.Lock()
	d.invByOp[cv.opID] = cv
	d.convByTID[cv.threadID] = cv
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.invByOp, cv.opID)
		delete(d.invByHref, cv.inviteHref)
		d.mu.Unlock()
	}()

	body := map[string]string{"to": t.To, "operationId": cv.opID, "threadId": cv.threadID}
	if t.Subject != "" {
		body["subject"] = t.Subject
	}
	if t.Importance != "" {
		body["importance"] = t.Importance
	}
	b, _ := json.Marshal(body)
	resp, err := s.do(ctx, http.MethodPost, s.startMessaging, resStartMessaging, "application/json", b, 0)
	if err != nil {
		s.drop(cv, "invitation refused")
		return nil, s.errorStep(err)
	}
	if loc := s.abs(resp.header.Get("Location")); loc != "" {
		d.mu.Lock()
		cv.inviteHref = loc
		d.invByHref[loc] = cv
		if c, ok := d.takeOrphan(loc); ok {
			s.learnInvitationLocked(cv, c.res)
			cv.completeInvite(c)
		}
		d.mu.Unlock()
	}

	timer := time.NewTimer(s.c.timers.InvitationWait)
	defer timer.Stop()
	select {
	case <-cv.inviteDone:
	case <-timer.C:
		return s.inviteTimeout(ctx, cv)
	case <-s.done:
		return nil, s.deadStep(false)
	case <-ctx.Done():
		return nil, &step{out: relay.Outcome{Kind: relay.RetryLater, Reason: string(ReasonCanceled)}}
	}
	d.mu.Lock()
	res := cv.result
	d.mu.Unlock()
	if res.status != "Success" {
		s.drop(cv, "invitation failed")
		kind, reason := classifyInvitation(res.reason)
		st := failed(kind, reason, "invitation failed")
		st.out.Code, st.out.Subcode = res.reason.Code, res.reason.Subcode
		if kind == relay.RetryLater {
			st.out.RetryAfter = s.c.timers.InvitationRetry
		}
		return nil, st
	}
	if st := s.ensureReady(ctx, cv); st != nil {
		s.drop(cv, "not connected")
		return nil, st
	}
	return cv, nil
}

// inviteTimeout handles an invitation without a completed event in time:
// read its state; if still not connected, cancel it (§5.3).
func (s *session) inviteTimeout(ctx context.Context, cv *conv) (*conv, *step) {
	if cv.inviteHref != "" {
		if u, err := url.Parse(cv.inviteHref); err == nil {
			if resp, err := s.do(ctx, http.MethodGet, u, resInvitation, "", nil, 0); err == nil {
				var inv halResource
				if decodeJSON(resp.body, &inv) == nil {
					s.disp.mu.Lock()
					s.learnInvitationLocked(cv, &inv)
					s.disp.mu.Unlock()
					if inv.State == "Connected" && s.ensureReady(ctx, cv) == nil {
						return cv, nil
					}
				}
			}
		}
	}
	s.disp.mu.Lock()
	cancelHref := cv.cancelHref
	s.disp.mu.Unlock()
	if u, err := url.Parse(cancelHref); err == nil && cancelHref != "" {
		if _, err := s.do(ctx, http.MethodPost, u, resCancel, "", nil, 0); err != nil {
			s.c.log.DebugContext(ctx, "cancel invitation", "pool", s.pool, "err", err)
		}
	}
	s.drop(cv, "invitation timed out")
	st := failed(relay.RetryLater, ReasonNoAnswer, "no answer to the invitation")
	st.out.RetryAfter = s.c.timers.InvitationRetry
	return nil, st
}

// ensureReady fetches what the events did not embed: the invitation (for
// the messaging link) and the messaging resource (for sendMessage).
func (s *session) ensureReady(ctx context.Context, cv *conv) *step {
	d := &s.disp
	d.mu.Lock()
	ready := cv.connected && cv.sendMessage != nil && !cv.stale
	msgHref, invHref := cv.msgHref, cv.inviteHref
	d.mu.Unlock()
	if ready {
		return nil
	}
	if msgHref == "" {
		if invHref == "" {
			return failed(relay.RetryLater, ReasonConversationGone, "invitation has no Location")
		}
		u, _ := url.Parse(invHref)
		resp, err := s.do(ctx, http.MethodGet, u, resInvitation, "", nil, 0)
		if err != nil {
			return s.errorStep(err)
		}
		var inv halResource
		if err := decodeJSON(resp.body, &inv); err != nil {
			return failed(relay.RetryLater, ReasonServer, "invitation: "+err.Error())
		}
		d.mu.Lock()
		s.learnInvitationLocked(cv, &inv)
		msgHref = cv.msgHref
		d.mu.Unlock()
		if msgHref == "" {
			return failed(relay.RetryLater, ReasonConversationGone, "invitation has no messaging link")
		}
	}
	return s.readMessaging(ctx, cv)
}

// readMessaging GETs the messaging resource and records its state.
func (s *session) readMessaging(ctx context.Context, cv *conv) *step {
	s.disp.mu.Lock()
	msgHref := cv.msgHref
	s.disp.mu.Unlock()
	u, err := url.Parse(msgHref)
	if err != nil || msgHref == "" {
		return failed(relay.RetryLater, ReasonConversationGone, "no messaging link")
	}
	resp, err := s.do(ctx, http.MethodGet, u, resMessaging, "", nil, 0)
	if err != nil {
		s.drop(cv, "messaging unreadable")
		return s.errorStep(err)
	}
	var m halResource
	if err := decodeJSON(resp.body, &m); err != nil {
		return failed(relay.RetryLater, ReasonServer, "messaging: "+err.Error())
	}
	s.disp.mu.Lock()
	defer s.disp.mu.Unlock()
	send := s.abs(m.link("sendMessage"))
	if m.State != "Connected" || send == "" {
		s.dropLocked(cv, "messaging not connected")
		return failed(relay.RetryLater, ReasonConversationGone, "messaging is "+m.State)
	}
	cv.sendMessage, _ = url.Parse(send)
	cv.connected, cv.stale = true, false
	return nil
}
