// Package ucwasim is a strict, in-process UCWA 2.0 server simulator (Skype
// for Business Server 2015 on-premises) for tests and for cmd/ucwa-sim.
// The protocol brief it follows is shared/ucwa/PROTOCOL.md; section 12 is
// its specification. UCWA reference:
// https://learn.microsoft.com/en-us/skype-sdk/ucwa/
//
// # What it simulates
//
// Each [Sim] listens on 127.0.0.1 with separate listeners for two discovery
// roots (internal, external), each pool (default fe1 and fe2-backup) and a
// JSON control API. A pool serves the user resource, the WebTicket token
// endpoint (password grant, tokens "cwt=<random>", pool-scoped unless
// Config.SharedTokens) and UCWA: applications, the event channel (P-GET),
// me/makeMeAvailable/reportMyActivity, messaging invitations with the §5.3
// event sequence, conversations, messaging, sendMessage, stopMessaging,
// message resources, DELETE conversation and DELETE application.
//
// Every URL except the discovery roots is opaque and random, differs per
// pool and per application, and is rendered sometimes relative, sometimes
// absolute; the events link carries the server-owned ack parameter. A URL
// the pool never issued gets 404 and a [Violation]. The 401 challenge is
// HTML with both WWW-Authenticate challenges (optionally on one line).
//
// The event channel follows the ack model of §12.4: the answer to ack=k is
// batch k with next=ack=k+1; a repeated ack re-delivers the same batch; an
// ack out of range gets only a resync link; a second concurrent P-GET
// releases the first with 409 PGetReplaced. High priority events release
// the held P-GET at once; medium/low events wait for the medium/low hold
// unless something else releases them. An application dies when no P-GET
// arrives within 15 minutes of the previous release, and a P-GET after a
// long silence (Config.ResumeAfter) finds its conversations gone and gets a
// resume link.
//
// All protocol timers run on real timers multiplied by Config.TimeScale, so
// 30-second and 15-minute behaviours take milliseconds in tests. Faults are
// scripted with [Sim.Inject] (by count and time window) and presets:
// [Sim.PoolGone]/[Sim.PoolRecover] with [Sim.SetHomePool] (F1-F4),
// [Sim.SetPoolVersion] (F5), [Sim.ExpireTokens], [Sim.KillApplications],
// [Sim.DisplaceApplications], [Sim.ExpireActivity], [Sim.DropEventChannel],
// [Sim.ReplacePGets], [Sim.EndConversations] and [Sim.Reply]. Recipients
// are scripted per attempt with [Sim.SetRecipient]. Observations:
// [Sim.Messages], [Sim.Violations], [Sim.Stats], [Sim.Conversations],
// [Sim.RequestLog], [Sim.DuplicateCounts]. Messages, violations and
// request counts are recorded before the answer is written, so a client
// that saw an answer also sees its record; the request log entry (with
// latency) is written after it.
//
// Requests answered by an injected fault are never violations, nor are
// 401s for expired tokens or for another pool's token, nor answers to URLs
// of an application the server killed, nor a send on a conversation that
// ended after it was connected. Requests carrying Origin/X-Ms-Origin get
// 403 and a violation (a server-side client must not send them).
//
// # Inferred behaviour, configurable
//
// The failure code/subcode pairs of invitations (Behavior.Code/Subcode) and
// messages (Fault.Code/Subcode with MessageFailure); the sendMessage status
// on a disconnected modality (Config.StaleSendStatus, 404 or 409); whether
// immediate events precede the 201 (Config.Early); the invitation no-answer
// timeout (Config.InviteTimeout); the resume threshold (Config.ResumeAfter);
// the activity expiry (Config.ActivityTimeout); the application cap
// (Config.MaxApplications, the oldest is displaced with 410
// TooManyApplications); the message size limit (Config.MaxMessageBytes);
// clamping or rejecting out-of-range P-GET parameters
// (Config.StrictEventParams); requiring makeMeAvailable
// (Config.RequireMakeMeAvailable); embedding resources in events
// (Config.EmbedResources, [Sim.SetEmbedResources]); event aggregation
// (Config.Collapse); the outstanding-request cap (Config.MaxOutstanding);
// the online 403 InvalidToken answer (Config.ForbidInvalidTokens); an
// unquoted challenge href (Config.UnquotedChallengeHref); the resource
// version a pool serves ([Sim.SetPoolVersion], preset F5).
//
// # Control API
//
// ControlURL serves the same functions as JSON: GET /sim/messages,
// /sim/violations, /sim/stats, /sim/requests, /sim/conversations; POST
// /sim/reply ({"sip":..., "text":...}); POST /sim/faults (a Fault
// with durations as Go strings, "250ms"), DELETE /sim/faults; POST
// /sim/pools/{pool}/gone, /sim/pools/{pool}/recover, /sim/home?pool=NAME,
// /sim/applications/kill, /sim/applications/displace,
// /sim/applications/expire-activity, /sim/tokens/expire, /sim/events/drop,
// /sim/events/replace,
// /sim/conversations/end?sip=URI; PUT /sim/recipients/{sip} (a list of
// Behavior, After as a Go duration string).
//
// # Known fidelity gaps (PROTOCOL §12.10 and simplifications)
//
//   - The real code/subcode pairs of failed invitations and messages, the
//     sendMessage error on a disconnected modality, the idle timeout of an
//     application without an event channel (here: the same 15 minute P-GET
//     timer runs from creation), the application cap per user and real
//     throttling thresholds are unknown; the defaults are guesses.
//   - Whether a first message carried in the invitation (_links.message)
//     produces message events is unknown: Config.InvitationMessageEvents.
//   - No aggregation "collapse" mode: every intermediate event is sent.
//   - Replies ([Sim.Reply]) are never marked undelivered when the client
//     does not fetch them within 30 s.
//   - No multi-party (addParticipant), no batch
//     endpoint, no PUT/ETag handling, no TLS (so no TLS handshake faults),
//     no passive/windows/anonmeeting grants.
//   - Discovery roots never answer with a redirect link (the user resource
//     does when the home pool moved, [Sim.SetHomePool]); a root that is
//     "down" is simulated with a Reset fault, not a refused connection.
//   - Pool states (FailingOver, FailedOver...) are not modelled; tests
//     script them with PoolGone, SetHomePool and faults.
//   - A message whose completion is suppressed reads Succeeded on GET.
package ucwasim
