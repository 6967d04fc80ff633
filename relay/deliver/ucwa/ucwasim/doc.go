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
// [Sim.SetLinkHost] makes a pool hand out every link (discovery's user
// link, the token href, application, events, Location headers) as an
// absolute URL on another host name with the same port, e.g. "localhost":
// a client that trusts only 127.0.0.1 must refuse them; one that follows
// them is served (only the path decides what a URL addresses) and counted
// in Stats.LinkHostRequests.
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
// [Sim.ReplacePGets], [Sim.EndConversations], [Sim.Reply] and
// [Sim.SetLinkHost]. A Fault with neither Pool nor Resource answers every
// request to the roots and pools (the event channel P-GET, sendMessage and
// the token endpoint included) as it arrives, until its Count runs out; a
// P-GET already held when it is injected is not released by it. A Fault's
// Hold keeps the requests it meets until the test closes it (or the client
// gives up, or the simulator closes), then lets them go on. [Sim.PoolGone]
// answers every request to the pool 410 CannotRedirect (the P-GET at once)
// except the token endpoint and xframe, until [Sim.PoolRecover]. Recipients
// are scripted per attempt with [Sim.SetRecipient]; [Sim.SetUnconfirmed]
// makes a recipient's messages accepted (201, recorded in Messages) but
// never confirmed: no message completed event, status "Pending".
// Observations: [Sim.Messages], [Sim.Violations], [Sim.Stats],
// [Sim.Conversations], [Sim.RequestLog], [Sim.DuplicateCounts],
// [Sim.RequestRate], [Sim.HeldPolls]. Messages, violations and request counts are recorded
// before the answer is written, so a client that saw an answer also sees
// its record; the request log entry (with latency) is written after it.
//
// Requests answered by an injected fault are never violations (except for
// their timing, see below), nor are
// 401s for expired tokens or for another pool's token, nor answers to URLs
// of an application the server killed, nor a send on a conversation that
// ended after it was connected. Requests carrying Origin/X-Ms-Origin get
// 403 and a violation (a server-side client must not send them).
//
// # Client timing
//
// Two checks catch a client that recovers impolitely (PROTOCOL §8.7, §9.4
// step 3: never retry a URL before its Retry-After, at most about 3
// requests per second against a failing host).
//
// Whenever an answer carries Retry-After (an injected Fault.RetryAfter,
// delta-seconds or HTTP-date), the server remembers for that listener
// ("internal", "external" or the pool), method and path without query the
// instant it named. A request to the same three before that instant, less
// [RetryAfterTolerance] (50 ms, for clock and scheduling noise), is a
// violation "retry-before-retry-after" whose detail says how early it was
// ("412ms before Retry-After"). It is recorded even when the request is
// again answered by a fault: the rule is about the client's timing, not
// the answer, and the request is handled as usual. The delay is real time
// (not scaled by TimeScale), as the client reads it. Requests that arrived
// before the Retry-After answer was written, and answers the client had
// already given up on (its connection closed) or never got (ghost
// deliveries), do not count.
//
// Every request that reaches a root or pool listener (token endpoint,
// faulted and reset requests included; the control API not) is timed per
// listener. Stats.MaxRequestsPerSecond holds the most that arrived within
// any sliding one-second window; [Sim.RequestRate] answers the same, and
// the total, for a time range. Note that a client spacing requests exactly
// 1/3 s apart shows 4 in one window. The last 100,000 arrivals per
// listener are kept.
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
// ControlURL serves the same functions as JSON. [ControlAPI] lists every
// call (GET /sim/ answers it, with [ControlRecipes]: failing a pool over
// and back, declining or slowing a recipient, a busy server), for
// example POST /sim/pools/{pool}/gone, POST /sim/pools/{pool}/recover,
// POST /sim/home?pool=NAME, PUT /sim/recipients/{sip} (a list of
// Behavior, After as a Go duration string) and POST /sim/faults (a Fault
// with durations as Go strings, "250ms").
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
//   - A message whose completion is suppressed (Fault.SuppressCompletion,
//     a lost event) reads Succeeded on GET; one to a recipient set with
//     SetUnconfirmed reads Pending.
//   - The server never sends Retry-After on its own (only faults do), and
//     the Retry-After and rate checks key on the listener, not on the Host
//     header, so links on a SetLinkHost name share them with 127.0.0.1.
package ucwasim
