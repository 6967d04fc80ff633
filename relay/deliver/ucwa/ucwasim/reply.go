package ucwasim

import (
	"net/url"
	"time"
)

// ConversationInfo is a snapshot of one conversation, for assertions.
type ConversationInfo struct {
	Pool, Application, ID, Recipient string
	// State is the conversation state: Connecting, Connected or
	// Disconnected.
	State string
	// MessagingState is the messaging modality state.
	MessagingState string
	// InvitationState is Connecting, Connected, Declined, Failed or
	// Cancelled.
	InvitationState string
	// InvitationOperationID is the operationId of the startMessaging.
	InvitationOperationID string
	// Live is false once the conversation ended.
	Live bool
}

// Conversations returns every conversation ever started, in start order.
func (s *Sim) Conversations() []ConversationInfo {
	s.mu.RLock()
	all := append([]*conversation(nil), s.allConvs...)
	s.mu.RUnlock()
	out := make([]ConversationInfo, 0, len(all))
	for _, c := range all {
		a := c.a
		a.mu.Lock()
		out = append(out, ConversationInfo{
			Pool: a.p.name, Application: a.id, ID: c.id, Recipient: c.recipient,
			State: c.state, MessagingState: c.msgState, InvitationState: c.inv.state,
			InvitationOperationID: c.inv.operationID, Live: !c.dead && a.dead == alive,
		})
		a.mu.Unlock()
	}
	return out
}

// Reply makes sip send text to the bot in every connected conversation
// with sip: an incoming message "started" event whose message carries the
// text as a plainMessage data URI (PROTOCOL §6.6). It returns how many
// conversations got the reply.
func (s *Sim) Reply(sip, text string) int {
	key := normalizeSIP(sip)
	n := 0
	for _, a := range s.liveApps() {
		a.mu.Lock()
		for _, c := range a.convs {
			if c.recipient != key || c.dead || c.msgState != "Connected" {
				continue
			}
			m := &message{c: c, path: c.msgPath + "/messages/" + randID(10), contentType: "text/plain",
				body: text, status: "Succeeded", at: time.Now(), incoming: true}
			a.p.register(m.path, &route{kind: "message", app: a, conv: c, msg: m})
			a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "message", m.path, "started", nil, "", m.renderLocked()))
			n++
		}
		a.mu.Unlock()
	}
	return n
}

// dataURI renders a message body the way UCWA links to message text.
func dataURI(contentType, body string) string {
	return "data:" + contentType + ";charset=utf8," + url.PathEscape(body)
}
