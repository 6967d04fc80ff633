package match

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
)

// Type is a matcher's operator.
type Type int

// Matcher operators.
const (
	Equal     Type = iota // =
	NotEqual              // !=
	Regexp                // =~
	NotRegexp             // !~
)

// String returns the operator as written: "=", "!=", "=~" or "!~".
func (t Type) String() string {
	switch t {
	case Equal:
		return "="
	case NotEqual:
		return "!="
	case Regexp:
		return "=~"
	case NotRegexp:
		return "!~"
	default:
		return "?"
	}
}

// Limits on matchers. They are far above what a routing rule needs.
const (
	// MaxInputBytes caps the text of one matcher or matcher list.
	MaxInputBytes = 4 << 10
	// MaxMatchers caps how many matchers one list may hold.
	MaxMatchers = 64
	// MaxRegexBytes caps the length of one regular expression.
	MaxRegexBytes = 1 << 10
	// MaxRegexInsts caps the size of one compiled regular expression, in
	// instructions of Go's regexp/syntax program.
	MaxRegexInsts = 10_000
)

// Matcher is one label matcher. Create it with [New] or [Parse]; the zero
// value is not usable for regular expression operators.
type Matcher struct {
	Type  Type
	Name  string
	Value string
	re    *regexp.Regexp
}

// New builds a matcher. For Regexp and NotRegexp, value is compiled anchored
// at both ends, as Alertmanager does.
func New(t Type, name, value string) (*Matcher, error) {
	m, err := newMatcher(t, name, value)
	if err != nil {
		return nil, fmt.Errorf("new matcher: %w", err)
	}
	return m, nil
}

func newMatcher(t Type, name, value string) (*Matcher, error) {
	if t < Equal || t > NotRegexp {
		return nil, fmt.Errorf("unknown operator %d", int(t))
	}
	if name == "" {
		return nil, fmt.Errorf("empty label name")
	}
	m := &Matcher{Type: t, Name: name, Value: value}
	if t == Regexp || t == NotRegexp {
		re, err := compile(value)
		if err != nil {
			return nil, err
		}
		m.re = re
	}
	return m, nil
}

// compile checks the size of pattern and compiles it fully anchored.
func compile(pattern string) (*regexp.Regexp, error) {
	if len(pattern) > MaxRegexBytes {
		return nil, fmt.Errorf("regular expression is %d bytes long, at most %d accepted", len(pattern), MaxRegexBytes)
	}
	// The pattern must parse on its own first: wrapped as it is, "a)|(b"
	// would turn into a valid but differently anchored expression.
	if _, err := syntax.Parse(pattern, syntax.Perl); err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", pattern, err)
	}
	anchored := "^(?s:" + pattern + ")$"
	tree, err := syntax.Parse(anchored, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", pattern, err)
	}
	prog, err := syntax.Compile(tree.Simplify())
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", pattern, err)
	}
	if len(prog.Inst) > MaxRegexInsts {
		return nil, fmt.Errorf("regular expression %q is too complex (%d instructions, at most %d accepted)", pattern, len(prog.Inst), MaxRegexInsts)
	}
	re, err := regexp.Compile(anchored)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", pattern, err)
	}
	return re, nil
}

// MatchValue reports whether the matcher accepts a label value. An absent
// label is passed as "".
func (m *Matcher) MatchValue(v string) bool {
	switch m.Type {
	case Equal:
		return v == m.Value
	case NotEqual:
		return v != m.Value
	case Regexp:
		return m.re.MatchString(v)
	case NotRegexp:
		return !m.re.MatchString(v)
	default:
		return false
	}
}

// Matches reports whether the matcher accepts labels; a missing label reads
// as "".
func (m *Matcher) Matches(labels map[string]string) bool {
	return m.MatchValue(labels[m.Name])
}

// String returns the matcher in the syntax Parse reads, with the value
// always quoted and the name quoted when it needs to be: Parse(m.String())
// gives back an equal matcher, as long as the text fits in MaxInputBytes
// (quoting can make it longer than what was parsed).
func (m *Matcher) String() string {
	name := m.Name
	if needsQuotes(name) {
		name = strconv.Quote(name)
	}
	return name + m.Type.String() + strconv.Quote(m.Value)
}

// needsQuotes reports whether s cannot be written unquoted.
func needsQuotes(s string) bool {
	return s == "" || strings.IndexFunc(s, isReserved) >= 0
}

// Matchers is a list of matchers that all must match.
type Matchers []*Matcher

// Matches reports whether every matcher accepts labels. The empty list
// matches everything.
func (ms Matchers) Matches(labels map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(labels) {
			return false
		}
	}
	return true
}

// String returns the list in braces, {a="b", c=~"d"}, which ParseList reads
// back when it fits in MaxInputBytes.
func (ms Matchers) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.String())
	}
	b.WriteByte('}')
	return b.String()
}
