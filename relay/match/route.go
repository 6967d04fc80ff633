package match

// Rule sends the alerts its matchers accept to its conversations.
type Rule struct {
	// Matchers must all match an alert's labels; an empty list matches
	// every alert.
	Matchers Matchers
	// Conversations are the names of the conversations the alert goes to.
	// A rule without conversations that matches (and does not continue)
	// drops the alert: it goes nowhere, not to the defaults.
	Conversations []string
	// Continue makes Route try the later rules too after this one matched.
	Continue bool
}

// Route returns the conversations one alert goes to: those of the first
// rule matching labels, plus those of the rules after it while the matching
// rules say Continue. When no rule matches, it returns defaults. The
// result keeps the order of first appearance and holds no duplicates; it
// is a new slice.
func Route(rules []Rule, defaults []string, labels map[string]string) []string {
	var out []string
	add := func(names []string) {
		for _, n := range names {
			if !contains(out, n) {
				out = append(out, n)
			}
		}
	}
	matched := false
	for _, r := range rules {
		if !r.Matchers.Matches(labels) {
			continue
		}
		matched = true
		add(r.Conversations)
		if !r.Continue {
			break
		}
	}
	if !matched {
		add(defaults)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
