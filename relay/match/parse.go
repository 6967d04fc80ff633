package match

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SyntaxError is a mistake in matcher text. Offset is the byte offset of
// the offending token in Input, counted from 0.
type SyntaxError struct {
	Input  string
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("matcher %q: at byte %d: %s", e.Input, e.Offset, e.Msg)
}

// Parse parses exactly one matcher, such as severity=~"critical|page". It
// may be in braces ({team!="db"}) and have a trailing comma, as
// Alertmanager accepts.
func Parse(s string) (*Matcher, error) {
	ms, err := ParseList(s)
	if err != nil {
		return nil, err
	}
	switch len(ms) {
	case 1:
		return ms[0], nil
	case 0:
		return nil, &SyntaxError{Input: s, Offset: 0, Msg: "no matcher found"}
	default:
		return nil, &SyntaxError{Input: s, Offset: 0, Msg: fmt.Sprintf("expected 1 matcher, found %d", len(ms))}
	}
}

// ParseList parses a list of matchers: {a="b", c=~"d"}, or the same without
// braces. Empty input and {} give an empty list.
func ParseList(s string) (Matchers, error) {
	if len(s) > MaxInputBytes {
		return nil, &SyntaxError{Input: s[:64] + "...", Offset: MaxInputBytes, Msg: fmt.Sprintf("input is %d bytes long, at most %d accepted", len(s), MaxInputBytes)}
	}
	p := parser{lex: lexer{in: s}}
	ms, err := p.list()
	if err != nil {
		return nil, err
	}
	return ms, nil
}

// ParseStrings parses each string of ss with ParseList and concatenates the
// results, the way Alertmanager reads a route's matchers list. Errors name
// the index of the bad string.
func ParseStrings(ss []string) (Matchers, error) {
	var out Matchers
	for i, s := range ss {
		ms, err := ParseList(s)
		if err != nil {
			return nil, fmt.Errorf("matchers[%d]: %w", i, err)
		}
		out = append(out, ms...)
		if len(out) > MaxMatchers {
			return nil, fmt.Errorf("matchers[%d]: more than %d matchers", i, MaxMatchers)
		}
	}
	return out, nil
}

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokOpen
	tokClose
	tokComma
	tokOp
	tokQuoted
	tokUnquoted
)

func (k tokenKind) String() string {
	return [...]string{"end of input", "{", "}", ",", "operator", "quoted string", "unquoted text"}[k]
}

type token struct {
	kind tokenKind
	text string // as written
	off  int
	op   Type // tokOp only
}

func (t token) describe() string {
	if t.kind == tokEOF {
		return "end of input"
	}
	return strconv.Quote(t.text)
}

// isReserved reports whether r ends an unquoted name or value.
func isReserved(r rune) bool {
	return unicode.IsSpace(r) || strings.ContainsRune("{}!=~,\\\"'`", r)
}

// lexer splits matcher text into tokens.
type lexer struct {
	in     string
	pos    int
	peeked *token
}

func (l *lexer) errorf(off int, format string, args ...any) error {
	return &SyntaxError{Input: l.in, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (l *lexer) peek() (token, error) {
	if l.peeked == nil {
		t, err := l.scan()
		if err != nil {
			return token{}, err
		}
		l.peeked = &t
	}
	return *l.peeked, nil
}

func (l *lexer) next() (token, error) {
	t, err := l.peek()
	l.peeked = nil
	return t, err
}

func (l *lexer) scan() (token, error) {
	for l.pos < len(l.in) {
		r, size := utf8.DecodeRuneInString(l.in[l.pos:])
		if !unicode.IsSpace(r) {
			break
		}
		l.pos += size
	}
	start := l.pos
	if start >= len(l.in) {
		return token{kind: tokEOF, off: start}, nil
	}
	r, size := utf8.DecodeRuneInString(l.in[start:])
	if r == utf8.RuneError && size <= 1 {
		return token{}, l.errorf(start, "invalid UTF-8")
	}
	one := func(k tokenKind) (token, error) {
		l.pos += size
		return token{kind: k, text: l.in[start:l.pos], off: start}, nil
	}
	op := func(t Type, n int) (token, error) {
		l.pos += n
		return token{kind: tokOp, text: l.in[start:l.pos], off: start, op: t}, nil
	}
	rest := l.in[start:]
	switch {
	case r == '{':
		return one(tokOpen)
	case r == '}':
		return one(tokClose)
	case r == ',':
		return one(tokComma)
	case strings.HasPrefix(rest, "=~"):
		return op(Regexp, 2)
	case strings.HasPrefix(rest, "!~"):
		return op(NotRegexp, 2)
	case strings.HasPrefix(rest, "!="):
		return op(NotEqual, 2)
	case r == '=':
		return op(Equal, 1)
	case r == '"':
		return l.quoted()
	case isReserved(r):
		hint := ""
		if r == '\'' || r == '`' || r == '\\' {
			hint = " (quote values with double quotes)"
		}
		return token{}, l.errorf(start, "unexpected %q%s", r, hint)
	}
	for l.pos < len(l.in) {
		r, size := utf8.DecodeRuneInString(l.in[l.pos:])
		if r == utf8.RuneError && size <= 1 {
			return token{}, l.errorf(l.pos, "invalid UTF-8")
		}
		if isReserved(r) {
			break
		}
		l.pos += size
	}
	return token{kind: tokUnquoted, text: l.in[start:l.pos], off: start}, nil
}

// quoted scans a double-quoted string, up to its unescaped closing quote.
func (l *lexer) quoted() (token, error) {
	start := l.pos
	i := start + 1
	for i < len(l.in) {
		switch l.in[i] {
		case '\\':
			i += 2
			continue
		case '"':
			l.pos = i + 1
			return token{kind: tokQuoted, text: l.in[start:l.pos], off: start}, nil
		}
		i++
	}
	return token{}, l.errorf(start, "unterminated quoted string")
}

// value returns the text a name or value token stands for.
func (l *lexer) value(t token) (string, error) {
	if t.kind == tokUnquoted {
		return t.text, nil
	}
	s, err := strconv.Unquote(t.text)
	if err != nil {
		return "", l.errorf(t.off, "invalid escape sequence in %s", t.text)
	}
	if !utf8.ValidString(s) {
		return "", l.errorf(t.off, "%s is not valid UTF-8", t.text)
	}
	return s, nil
}

type parser struct {
	lex lexer
	out Matchers
}

func (p *parser) list() (Matchers, error) {
	l := &p.lex
	t, err := l.peek()
	if err != nil {
		return nil, err
	}
	braced := t.kind == tokOpen
	if braced {
		_, _ = l.next()
	}
	for {
		t, err := l.peek()
		if err != nil {
			return nil, err
		}
		switch {
		case t.kind == tokEOF:
			if braced {
				return nil, l.errorf(t.off, "end of input: expected a close brace")
			}
			return p.out, nil
		case t.kind == tokClose:
			_, _ = l.next()
			if !braced {
				return nil, l.errorf(t.off, "unexpected \"}\" without an opening brace")
			}
			end, err := l.next()
			if err != nil {
				return nil, err
			}
			if end.kind != tokEOF {
				return nil, l.errorf(end.off, "unexpected %s after the close brace", end.describe())
			}
			return p.out, nil
		}
		if err := p.matcher(); err != nil {
			return nil, err
		}
		// After a matcher: a comma, the close brace or the end.
		t, err = l.peek()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tokComma:
			_, _ = l.next()
		case tokClose, tokEOF:
		default:
			want := "a comma or the end"
			if braced {
				want = "a comma or a close brace"
			}
			return nil, l.errorf(t.off, "unexpected %s: expected %s", t.describe(), want)
		}
	}
}

func (p *parser) matcher() error {
	l := &p.lex
	nt, err := l.next()
	if err != nil {
		return err
	}
	if nt.kind != tokQuoted && nt.kind != tokUnquoted {
		return l.errorf(nt.off, "unexpected %s: expected a label name", nt.describe())
	}
	name, err := l.value(nt)
	if err != nil {
		return err
	}
	if name == "" {
		return l.errorf(nt.off, "empty label name")
	}
	ot, err := l.next()
	if err != nil {
		return err
	}
	if ot.kind != tokOp {
		return l.errorf(ot.off, "unexpected %s after label name %q: expected an operator =, !=, =~ or !~", ot.describe(), name)
	}
	vt, err := l.next()
	if err != nil {
		return err
	}
	if vt.kind != tokQuoted && vt.kind != tokUnquoted {
		return l.errorf(vt.off, "unexpected %s after %s%s: expected a label value (write \"\" for an empty one)", vt.describe(), name, ot.op)
	}
	value, err := l.value(vt)
	if err != nil {
		return err
	}
	if len(p.out) == MaxMatchers {
		return l.errorf(nt.off, "more than %d matchers", MaxMatchers)
	}
	m, err := newMatcher(ot.op, name, value)
	if err != nil {
		return l.errorf(vt.off, "%v", err)
	}
	p.out = append(p.out, m)
	return nil
}
