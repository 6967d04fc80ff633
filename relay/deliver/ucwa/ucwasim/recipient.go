package ucwasim

import (
	"strings"
	"time"
)

// BehaviorKind is how a recipient answers a messaging invitation.
type BehaviorKind string

// Behaviour kinds (PROTOCOL §12.5). The empty kind means Accept.
const (
	Accept    BehaviorKind = "accept"
	Decline   BehaviorKind = "decline"
	Ignore    BehaviorKind = "ignore" // no answer: Failure after the scaled InviteTimeout (or After)
	NotFound  BehaviorKind = "notFound"
	Offline   BehaviorKind = "offline"
	DND       BehaviorKind = "dnd"
	Forbidden BehaviorKind = "forbidden"
)

// Behavior is one scripted answer to one invitation attempt.
type Behavior struct {
	Kind BehaviorKind
	// After is the protocol-time delay before the outcome (scaled by
	// TimeScale). For Ignore a zero After means Config.InviteTimeout.
	After time.Duration
	// Code and Subcode override the Failure reason pair (the real pairs are
	// undocumented).
	Code, Subcode string
}

// failureReason returns the default reason pair of a failing kind.
func (b Behavior) failureReason() (code, subcode string) {
	switch b.Kind {
	case Decline:
		code, subcode = "RemoteFailure", "Declined"
	case Ignore:
		code, subcode = "Timeout", "Timeout"
	case NotFound:
		code, subcode = "NotFound", "DestinationNotFound"
	case Offline:
		code, subcode = "RemoteFailure", "TemporarilyUnavailable"
	case DND:
		code, subcode = "RemoteFailure", "DoNotDisturb"
	case Forbidden:
		code, subcode = "Forbidden", "NotAllowed"
	}
	if b.Code != "" {
		code = b.Code
	}
	if b.Subcode != "" {
		subcode = b.Subcode
	}
	return code, subcode
}

type recipientScript struct {
	steps    []Behavior
	attempts int
}

// SetRecipient sets the per-attempt script for invitations to sip; after
// the script is used up the last entry repeats. Unknown recipients accept at
// once. An empty script resets sip to accept at once.
func (s *Sim) SetRecipient(sip string, b ...Behavior) {
	key := normalizeSIP(sip)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(b) == 0 {
		delete(s.recipients, key)
		return
	}
	s.recipients[key] = &recipientScript{steps: append([]Behavior(nil), b...)}
}

// SetUnconfirmed makes the server never confirm messages to sip (on) or
// confirm them again (off). While on, sendMessage still answers 201 and
// the message is recorded in Messages (it was accepted), but no message
// completed event is ever emitted for it and its resource reads status
// "Pending" (PROTOCOL §6.3), also later; a first message carried in the
// invitation is treated alike. It takes precedence over a MessageFailure
// fault. Invitations are still answered as SetRecipient scripts, which
// does not change this setting.
func (s *Sim) SetUnconfirmed(sip string, on bool) {
	key := normalizeSIP(sip)
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.unconfirmed[key] = true
	} else {
		delete(s.unconfirmed, key)
	}
}

// isUnconfirmed reports whether messages to sip are never confirmed.
func (s *Sim) isUnconfirmed(sip string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.unconfirmed[normalizeSIP(sip)]
}

// nextBehavior returns the behaviour for the next invitation to sip.
func (s *Sim) nextBehavior(sip string) Behavior {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.recipients[normalizeSIP(sip)]
	if rs == nil {
		return Behavior{Kind: Accept}
	}
	i := min(rs.attempts, len(rs.steps)-1)
	rs.attempts++
	b := rs.steps[i]
	if b.Kind == "" {
		b.Kind = Accept
	}
	return b
}

func normalizeSIP(sip string) string {
	sip = strings.ToLower(strings.TrimSpace(sip))
	if !strings.HasPrefix(sip, "sip:") {
		sip = "sip:" + sip
	}
	return sip
}
