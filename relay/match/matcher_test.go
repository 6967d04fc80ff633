package match

import (
	"errors"
	"strings"
	"testing"
)

// TestMatchesAlertmanagerSemantics checks matching against what
// Alertmanager's labels.Matcher does for the same matcher and labels.
func TestMatchesAlertmanagerSemantics(t *testing.T) {
	t.Parallel()
	labels := map[string]string{
		"severity": "critical",
		"team":     "db",
		"instance": "db-1:9100",
		"empty":    "",
		"multi":    "line one\nline two",
		"utf":      "Störung 🙂",
	}
	tests := []struct {
		name    string
		matcher string
		want    bool
	}{
		{"equal", `severity="critical"`, true},
		{"equal other value", `severity="warning"`, false},
		{"equal is case sensitive", `severity="Critical"`, false},
		{"not equal", `team!="db"`, false},
		{"not equal other value", `team!="web"`, true},
		{"regexp alternation", `severity=~"critical|page"`, true},
		{"regexp is anchored at the start", `instance=~"1:9100"`, false},
		{"regexp is anchored at the end", `instance=~"db"`, false},
		{"regexp whole value", `instance=~"db-.*"`, true},
		{"regexp alternation is anchored as a whole", `instance=~"db|db-1:9100"`, true},
		{"regexp anchors do not leak into alternation", `severity=~"crit|xcritical"`, false},
		{"not regexp", `instance!~"db-.*"`, false},
		{"not regexp partial is no match", `instance!~"db"`, true},
		{"dot matches newline", `multi=~"line one.line two"`, true},
		{"dot star matches multi-line", `multi=~".*two"`, true},
		{"utf8 equal", `utf="Störung 🙂"`, true},
		{"utf8 regexp", `utf=~"St.rung .*"`, true},
		// A missing label reads as "".
		{"missing equal empty", `missing=""`, true},
		{"missing equal value", `missing="x"`, false},
		{"missing not equal value", `missing!="x"`, true},
		{"missing not equal empty", `missing!=""`, false},
		{"missing regexp dot star", `missing=~".*"`, true},
		{"missing regexp dot plus", `missing=~".+"`, false},
		{"missing not regexp dot plus", `missing!~".+"`, true},
		{"missing not regexp dot star", `missing!~".*"`, false},
		{"missing regexp optional", `missing=~"(critical)?"`, true},
		// A present empty label is the same as a missing one.
		{"empty equal empty", `empty=""`, true},
		{"empty not equal empty", `empty!=""`, false},
		{"empty regexp dot plus", `empty=~".+"`, false},
		{"present not equal empty", `severity!=""`, true},
		// Unquoted values.
		{"unquoted equal", `severity=critical`, true},
		{"unquoted regexp", `severity=~crit.*`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := Parse(tt.matcher)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.matcher, err)
			}
			if got := m.Matches(labels); got != tt.want {
				t.Errorf("Parse(%q).Matches(%v) = %v, want %v", tt.matcher, labels, got, tt.want)
			}
		})
	}
}

func TestMatchersMatchesAll(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"severity": "critical", "team": "web"}
	tests := []struct {
		name string
		list string
		want bool
	}{
		{"empty list matches everything", `{}`, true},
		{"all match", `{severity=~"critical|page", team!="db"}`, true},
		{"one fails", `{severity=~"critical|page", team!="web"}`, false},
		{"missing label equal empty", `{severity="critical", region=""}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := ParseList(tt.list)
			if err != nil {
				t.Fatalf("ParseList(%q): %v", tt.list, err)
			}
			if got := ms.Matches(labels); got != tt.want {
				t.Errorf("ParseList(%q).Matches(%v) = %v, want %v", tt.list, labels, got, tt.want)
			}
		})
	}
	if !Matchers(nil).Matches(nil) {
		t.Error("Matchers(nil).Matches(nil) = false, want true")
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := New(Regexp, "a", "(unclosed"); err == nil || !strings.Contains(err.Error(), "invalid regular expression") {
		t.Errorf(`New(Regexp, "a", "(unclosed") error = %v, want invalid regular expression`, err)
	}
	if _, err := New(Equal, "", "x"); err == nil {
		t.Error(`New(Equal, "", "x") = nil error, want an error for the empty name`)
	}
	if _, err := New(Type(9), "a", "x"); err == nil {
		t.Error("New(Type(9), ...) = nil error, want an error for the unknown operator")
	}
	// A pattern that only parses because of the anchoring wrapper is
	// rejected, not silently given other anchors.
	if _, err := New(Regexp, "a", "x)|(y"); err == nil {
		t.Error(`New(Regexp, "a", "x)|(y") = nil error, want an error`)
	}
	m, err := New(NotRegexp, "a", "b+")
	if err != nil {
		t.Fatal(err)
	}
	if m.MatchValue("bbb") || !m.MatchValue("abbb") {
		t.Errorf(`New(NotRegexp, "a", "b+") matched wrongly`)
	}
}

func TestRegexLimits(t *testing.T) {
	t.Parallel()
	long := `a=~"` + strings.Repeat("a", MaxRegexBytes+1) + `"`
	if _, err := Parse(long); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("Parse(long regexp) error = %v, want a length error", err)
	}
	complexRe := `a=~"(((a{100}){100}){100})"`
	_, err := Parse(complexRe)
	if err == nil {
		t.Fatalf("Parse(%q) = nil error, want a size error", complexRe)
	}
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("Parse(%q) error is %T, want *SyntaxError", complexRe, err)
	}
}

func TestTypeString(t *testing.T) {
	t.Parallel()
	for typ, want := range map[Type]string{Equal: "=", NotEqual: "!=", Regexp: "=~", NotRegexp: "!~", Type(7): "?"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", int(typ), got, want)
		}
	}
}
