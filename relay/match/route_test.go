package match

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustList(t *testing.T, s string) Matchers {
	t.Helper()
	ms, err := ParseList(s)
	if err != nil {
		t.Fatalf("ParseList(%q): %v", s, err)
	}
	return ms
}

func TestRoute(t *testing.T) {
	t.Parallel()
	rules := []Rule{
		{Matchers: mustList(t, `severity=~"critical|page"`), Conversations: []string{"oncall", "leads"}, Continue: true},
		{Matchers: mustList(t, `team="db"`), Conversations: []string{"dba", "oncall"}},
		{Matchers: mustList(t, `team="web"`), Conversations: []string{"web"}},
		{Matchers: mustList(t, `env="dev"`)}, // drops dev alerts
		{Matchers: mustList(t, `team="web"`), Conversations: []string{"never"}},
	}
	defaults := []string{"catchall", "catchall"}
	tests := []struct {
		name   string
		labels map[string]string
		want   []string
	}{
		{"continue then first match", map[string]string{"severity": "critical", "team": "db"}, []string{"oncall", "leads", "dba"}},
		{"continue only", map[string]string{"severity": "page"}, []string{"oncall", "leads"}},
		{"first match wins", map[string]string{"team": "web"}, []string{"web"}},
		{"continue then stop before later duplicates", map[string]string{"severity": "critical", "team": "web"}, []string{"oncall", "leads", "web"}},
		{"matching rule without conversations drops", map[string]string{"env": "dev"}, nil},
		{"no match uses defaults, de-duplicated", map[string]string{"team": "ops"}, []string{"catchall"}},
		{"no labels uses defaults", nil, []string{"catchall"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Route(rules, defaults, tt.labels)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Route(%v) mismatch (-want +got):\n%s", tt.labels, diff)
			}
		})
	}
}

func TestRouteEdges(t *testing.T) {
	t.Parallel()
	if got := Route(nil, []string{"d"}, map[string]string{"a": "b"}); !cmp.Equal(got, []string{"d"}) {
		t.Errorf("Route(no rules) = %v, want [d]", got)
	}
	if got := Route(nil, nil, nil); len(got) != 0 {
		t.Errorf("Route(nothing) = %v, want none", got)
	}
	// An empty matcher list is a catch-all rule.
	rules := []Rule{{Conversations: []string{"all"}}}
	if got := Route(rules, []string{"d"}, map[string]string{"x": "y"}); !cmp.Equal(got, []string{"all"}) {
		t.Errorf("Route(catch-all rule) = %v, want [all]", got)
	}
	// A matching continue rule counts as a match: no defaults after it.
	rules = []Rule{{Matchers: mustList(t, `a="1"`), Conversations: []string{"c"}, Continue: true}, {Matchers: mustList(t, `a="2"`), Conversations: []string{"x"}}}
	if got := Route(rules, []string{"d"}, map[string]string{"a": "1"}); !cmp.Equal(got, []string{"c"}) {
		t.Errorf("Route(continue, nothing after) = %v, want [c]", got)
	}
	// The result is a new slice: changing it leaves the rule alone.
	rules = []Rule{{Conversations: []string{"a"}}}
	got := Route(rules, nil, nil)
	got[0] = "changed"
	if rules[0].Conversations[0] != "a" {
		t.Error("Route returned the rule's own slice")
	}
}
