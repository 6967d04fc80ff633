package ucwasim

import (
	"encoding/base64"
	"strings"
	"time"
)

// conversation is one peer-to-peer messaging conversation; guarded by its
// application's mutex.
type conversation struct {
	a                                      *application
	id                                     string
	path, msgPath, sendPath, stopPath      string
	partsPath, localPath, remotePath       string
	remoteMsgPath, addPartPath, typingPath string
	inv                                    *invitation
	first                                  *message // carried in the invitation, sent on accept
	recipient, subject, importance, thread string
	state, msgState                        string // Connecting, Connected, Disconnected
	connected                              bool   // the sendMessage link was issued
	dead                                   bool
}

// invitation is an outgoing messagingInvitation.
type invitation struct {
	c                *conversation
	path, cancelPath string
	operationID      string
	state            string
	timer            *simTimer
	reason           *ucwaError
}

// message is one accepted outgoing message.
type message struct {
	c                        *conversation
	path                     string
	operationID, contentType string
	body                     string
	status                   string // Pending, Succeeded, Failed
	at                       time.Time
	incoming                 bool // a reply from the recipient (Sim.Reply)
}

func (a *application) newConversation(req startRequest) *conversation {
	p := a.p
	c := &conversation{a: a, id: randID(10), recipient: normalizeSIP(req.To), subject: req.Subject,
		importance: req.Importance, thread: req.ThreadID, state: "Connecting", msgState: "Disconnected"}
	if c.importance == "" {
		c.importance = "Normal"
	}
	c.path = a.convsPath + "/" + c.id
	c.msgPath = c.path + "/" + randID(6)
	c.sendPath = c.msgPath + "/messages" // the documented shape; never advertised before Connected
	c.stopPath = c.msgPath + "/" + randID(6)
	c.typingPath = c.msgPath + "/" + randID(6)
	c.partsPath = c.path + "/" + randID(6)
	c.localPath = c.partsPath + "/" + randID(6)
	c.remotePath = c.partsPath + "/" + randID(6)
	c.remoteMsgPath = c.remotePath + "/" + randID(6)
	c.addPartPath = c.path + "/" + randID(6)
	c.inv = &invitation{c: c, path: a.startPath + "/" + randID(8), operationID: req.OperationID, state: "Connecting"}
	c.inv.cancelPath = c.inv.path + "/" + randID(6)
	routes := map[string]*route{
		c.path:           {kind: "conversation", conv: c},
		c.msgPath:        {kind: "messaging", conv: c},
		c.sendPath:       {kind: "sendMessage", conv: c},
		c.stopPath:       {kind: "stopMessaging", conv: c},
		c.typingPath:     {kind: "setIsTyping", conv: c},
		c.partsPath:      {kind: "participants", conv: c},
		c.localPath:      {kind: "participant", conv: c},
		c.remotePath:     {kind: "participant", conv: c},
		c.remoteMsgPath:  {kind: "participantMessaging", conv: c},
		c.addPartPath:    {kind: "addParticipant", conv: c},
		c.inv.path:       {kind: "invitation", conv: c, inv: c.inv},
		c.inv.cancelPath: {kind: "cancel", conv: c, inv: c.inv},
	}
	a.s.mu.Lock()
	a.s.allConvs = append(a.s.allConvs, c)
	for path, rt := range routes {
		rt.app = a
		p.routes[path] = rt
	}
	a.s.mu.Unlock()
	return c
}

// Resource renderings (callers hold a.mu).

func (c *conversation) invitationLocked() map[string]any {
	p := c.a.p
	inv := c.inv
	links := map[string]any{
		"self":         link(p.href(inv.path)),
		"conversation": link(p.href(c.path)),
		"messaging":    link(p.href(c.msgPath)),
		"to":           link(c.recipient),
	}
	if inv.state == "Connecting" {
		links["cancel"] = link(p.href(inv.cancelPath))
	}
	body := map[string]any{
		"rel": "messagingInvitation", "direction": "Outgoing", "state": inv.state,
		"importance": c.importance, "subject": c.subject, "to": c.recipient,
		"threadId": c.thread, "_links": links,
	}
	if inv.operationID != "" {
		body["operationId"] = inv.operationID
	}
	if inv.state == "Connected" {
		body["_embedded"] = map[string]any{"acceptedByParticipant": []any{c.participantLocked(false)}}
	}
	if inv.reason != nil {
		body["reason"] = inv.reason
	}
	return body
}

func (c *conversation) conversationLocked() map[string]any {
	p := c.a.p
	mods := []string{}
	if c.msgState == "Connected" {
		mods = []string{"Messaging"}
	}
	links := map[string]any{
		"self":             link(p.href(c.path)),
		"messaging":        link(p.href(c.msgPath)),
		"participants":     link(p.href(c.partsPath)),
		"localParticipant": link(p.href(c.localPath)),
	}
	if c.state == "Connected" {
		links["addParticipant"] = link(p.href(c.addPartPath))
	}
	return map[string]any{
		"rel": "conversation", "state": c.state, "activeModalities": mods, "threadId": c.thread,
		"subject": c.subject, "importance": c.importance,
		"expirationTime": date(time.Now().Add(8 * time.Hour)), "_links": links,
	}
}

func (c *conversation) messagingLocked() map[string]any {
	p := c.a.p
	links := map[string]any{
		"self":         link(p.href(c.msgPath)),
		"conversation": link(p.href(c.path)),
	}
	body := map[string]any{"rel": "messaging", "state": c.msgState}
	switch c.msgState {
	case "Connecting":
		links["stopMessaging"] = link(p.href(c.stopPath))
	case "Connected":
		links["stopMessaging"] = link(p.href(c.stopPath))
		links["sendMessage"] = link(p.href(c.sendPath))
		links["setIsTyping"] = link(p.href(c.typingPath))
		links["typingParticipants"] = link(p.href(c.partsPath) + "?filter=typing")
		formats := []string{"Plain", "Html"}
		if c.a.s.cfg.PlainOnly {
			formats = []string{"Plain"}
		}
		body["negotiatedMessageFormats"] = formats
	}
	body["_links"] = links
	return body
}

func (c *conversation) participantLocked(local bool) map[string]any {
	p := c.a.p
	if local {
		return map[string]any{"rel": "localParticipant", "name": "Alert Bot", "uri": "sip:" + c.a.s.cfg.Username,
			"_links": map[string]any{"self": link(p.href(c.localPath)), "conversation": link(p.href(c.path))}}
	}
	return map[string]any{"rel": "participant", "name": strings.TrimPrefix(c.recipient, "sip:"), "uri": c.recipient,
		"_links": map[string]any{"self": link(p.href(c.remotePath)), "conversation": link(p.href(c.path)),
			"participantMessaging": link(p.href(c.remoteMsgPath))}}
}

func (m *message) renderLocked() map[string]any {
	p := m.c.a.p
	kind, text := "plainMessage", dataURI(m.contentType, m.body)
	if m.contentType == "text/html" {
		kind = "htmlMessage"
		text = "data:text/html;charset=utf8;base64," + base64.StdEncoding.EncodeToString([]byte(m.body))
	}
	direction, participant := "Outgoing", m.c.localPath
	if m.incoming {
		direction, participant = "Incoming", m.c.remotePath
	}
	body := map[string]any{
		"rel": "message", "direction": direction, "status": m.status, "timeStamp": date(m.at),
		"_links": map[string]any{
			"self":        link(p.href(m.path)),
			"messaging":   link(p.href(m.c.msgPath)),
			"participant": link(p.href(participant)),
			kind:          link(text),
		},
	}
	if m.operationID != "" {
		body["operationId"] = m.operationID
	}
	return body
}

// Event sequences (PROTOCOL §5.3).

func (c *conversation) queueStartLocked() {
	a := c.a
	a.enqueueLocked(a.newEvent(prioHigh, "communication", a.commPath, "messagingInvitation", c.inv.path, "started", nil, "", c.invitationLocked()))
	a.enqueueLocked(a.newEvent(prioHigh, "communication", a.commPath, "conversation", c.path, "added", nil, "", c.conversationLocked()))
	a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "localParticipant", c.localPath, "added", nil, "Alert Bot", c.participantLocked(true)))
	c.msgState = "Connecting"
	a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "messaging", c.msgPath, "updated", nil, "", c.messagingLocked()))
}

// answer applies the recipient's scripted answer to the invitation.
func (c *conversation) answer(b Behavior) {
	a := c.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.dead || c.inv.state != "Connecting" || a.dead != alive {
		return
	}
	c.inv.timer = nil
	if b.Kind == Accept {
		c.state = "Connected"
		c.msgState = "Connected"
		c.connected = true
		c.inv.state = "Connected"
		a.enqueueLocked(a.newEvent(prioHigh, "communication", a.commPath, "conversation", c.path, "updated", nil, "", c.conversationLocked()))
		a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "participant", c.remotePath, "added", nil, "", c.participantLocked(false)))
		a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "participantMessaging", c.remoteMsgPath, "added",
			map[string]any{"in": relLink{Rel: "participant", Href: a.p.href(c.remotePath)}}, "", nil))
		a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "messaging", c.msgPath, "updated", nil, "", c.messagingLocked()))
		if m := c.first; m != nil {
			c.deliverFirstLocked(m)
		}
		a.enqueueLocked(a.newEvent(prioHigh, "communication", a.commPath, "messagingInvitation", c.inv.path, "completed",
			map[string]any{"status": "Success"}, "", c.invitationLocked()))
		return
	}
	code, subcode := b.failureReason()
	c.inv.state = "Failed"
	if b.Kind == Decline {
		c.inv.state = "Declined"
	}
	c.failLocked(&ucwaError{Code: code, Subcode: subcode, Message: "The invitation to " + c.recipient + " failed: " + subcode + "."})
}

// failLocked completes the invitation with Failure and tears down.
func (c *conversation) failLocked(reason *ucwaError) {
	a := c.a
	c.inv.reason = reason
	a.enqueueLocked(a.newEvent(prioHigh, "communication", a.commPath, "messagingInvitation", c.inv.path, "completed",
		map[string]any{"status": "Failure", "reason": reason}, "", c.invitationLocked()))
	c.teardownLocked(nil, false)
}

// teardownLocked ends the conversation with events: participant deleted
// (when the remote side left), messaging Disconnected, conversation deleted.
func (c *conversation) teardownLocked(reason *ucwaError, remoteLeft bool) {
	a := c.a
	if c.dead {
		return
	}
	extra := map[string]any(nil)
	if reason != nil {
		extra = map[string]any{"reason": reason}
	}
	if remoteLeft && c.connected {
		a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "participant", c.remotePath, "deleted", nil, "", nil))
	}
	c.msgState = "Disconnected"
	c.state = "Disconnected"
	a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "messaging", c.msgPath, "updated", extra, "", c.messagingLocked()))
	a.enqueueLocked(a.newEvent(prioHigh, "communication", a.commPath, "conversation", c.path, "deleted", nil, "", nil))
	c.endLocked()
	for i, x := range a.convs {
		if x == c {
			a.convs = append(a.convs[:i], a.convs[i+1:]...)
			break
		}
	}
}

// endLocked ends the conversation silently; its URLs answer 404 from now.
func (c *conversation) endLocked() {
	c.dead = true
	c.msgState = "Disconnected"
	c.state = "Disconnected"
	if c.inv.timer != nil {
		c.inv.timer.stop()
		c.inv.timer = nil
	}
}

// deliverFirstLocked records the message carried in the invitation and,
// when configured, emits its completed event (undocumented either way).
func (c *conversation) deliverFirstLocked(m *message) {
	a := c.a
	s := a.s
	m.c = c
	m.at = time.Now()
	m.path = c.msgPath + "/messages/" + randID(10)
	a.p.register(m.path, &route{kind: "message", app: a, conv: c, msg: m})
	rec := Message{Pool: a.p.name, Application: a.id, Recipient: c.recipient, Conversation: c.id,
		OperationID: m.operationID, ContentType: m.contentType, Body: m.body, Time: m.at}
	s.rec.add(func(rc *recorder) { rc.messages = append(rc.messages, rec) })
	if s.isUnconfirmed(c.recipient) {
		m.status = "Pending"
		return
	}
	if s.cfg.InvitationMessageEvents {
		a.enqueueLocked(a.newEvent(prioHigh, "conversation", c.path, "message", m.path, "completed",
			map[string]any{"status": "Success"}, "", m.renderLocked()))
	}
}
