package match

import (
	"github.com/skype-relay/relay/relay/alertmanager"
)

// Split routes each alert of msg with Route and returns, per conversation,
// a notification holding only the alerts that go there, in their original
// order. Alerts that go nowhere (no rule matched and defaults is empty, or
// the matching rule has no conversations) are in no notification; when no
// alert goes anywhere the map is empty.
//
// Each notification keeps msg's envelope (version, receiver, group key,
// group labels, external URL) and recomputes from its own alerts what
// depends on them:
//
//   - Status is "firing" when any of its alerts fires, else "resolved".
//   - CommonLabels and CommonAnnotations are the pairs all of its alerts
//     share, as Alertmanager computes them for a group.
//   - TruncatedAlerts is kept on every notification. Alertmanager did not
//     send those alerts, so relay cannot tell where they would have been
//     routed; saying "N more alerts not shown" in every conversation of the
//     group is better than saying it in none (a conversation may hear of
//     alerts that were not its own).
//
// The notifications share the label and annotation maps of msg's alerts;
// neither side may change them. msg itself is not modified.
func Split(msg *alertmanager.Message, rules []Rule, defaults []string) map[string]*alertmanager.Message {
	alerts := make(map[string]alertmanager.Alerts)
	for _, a := range msg.Alerts {
		for _, c := range Route(rules, defaults, a.Labels) {
			alerts[c] = append(alerts[c], a)
		}
	}
	out := make(map[string]*alertmanager.Message, len(alerts))
	for c, as := range alerts {
		out[c] = msg.Subset(as)
	}
	return out
}
