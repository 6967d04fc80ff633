package match

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// m is a parsed matcher reduced to what tests compare.
type m struct {
	Type        Type
	Name, Value string
}

func flat(ms Matchers) []m {
	out := make([]m, len(ms))
	for i, x := range ms {
		out[i] = m{x.Type, x.Name, x.Value}
	}
	return out
}

// TestParseListAlertmanagerCases follows the cases of Alertmanager's UTF-8
// matcher parser: what it accepts and how it reads it.
func TestParseListAlertmanagerCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		want  []m
	}{
		{"empty input", ``, []m{}},
		{"empty braces", `{}`, []m{}},
		{"braces with spaces", ` { } `, []m{}},
		{"equal", `{foo=bar}`, []m{{Equal, "foo", "bar"}}},
		{"trailing comma", `{foo=bar,}`, []m{{Equal, "foo", "bar"}}},
		{"not equal", `{foo!=bar}`, []m{{NotEqual, "foo", "bar"}}},
		{"regexp", `{foo=~[a-z]+}`, []m{{Regexp, "foo", "[a-z]+"}}},
		{"not regexp", `{foo!~[a-z]+}`, []m{{NotRegexp, "foo", "[a-z]+"}}},
		{"emoji", `{foo=🙂}`, []m{{Equal, "foo", "🙂"}}},
		{"emoji sentence", `{foo=🙂bar}`, []m{{Equal, "foo", "🙂bar"}}},
		{"no braces", `foo=bar`, []m{{Equal, "foo", "bar"}}},
		{"no braces trailing comma", `foo=bar,`, []m{{Equal, "foo", "bar"}}},
		{"quoted", `{"foo"="bar"}`, []m{{Equal, "foo", "bar"}}},
		{"quoted regexp", `{"foo"=~"[a-z]+"}`, []m{{Regexp, "foo", "[a-z]+"}}},
		{"escaped bytes", `{"foo"="\xf0\x9f\x99\x82"}`, []m{{Equal, "foo", "🙂"}}},
		{"escaped code point", `{"foo"="\U0001f642"}`, []m{{Equal, "foo", "🙂"}}},
		{"escaped newline", `{"foo"="bar\n"}`, []m{{Equal, "foo", "bar\n"}}},
		{"escaped tab", `{"foo"="bar\t"}`, []m{{Equal, "foo", "bar\t"}}},
		{"escaped quotes", `{"foo"="\"bar\""}`, []m{{Equal, "foo", `"bar"`}}},
		{"escaped backslash", `{"foo"="bar\\"}`, []m{{Equal, "foo", `bar\`}}},
		{"empty quoted value", `foo=""`, []m{{Equal, "foo", ""}}},
		{"quoted name with space", `"service name"="api"`, []m{{Equal, "service name", "api"}}},
		{"two", `{foo=bar,bar!=baz}`, []m{{Equal, "foo", "bar"}, {NotEqual, "bar", "baz"}}},
		{"two quoted spaced", `{ severity =~ "critical|page" , team != "db" }`, []m{{Regexp, "severity", "critical|page"}, {NotEqual, "team", "db"}}},
		{"two without braces", `foo="bar",bar!="baz"`, []m{{Equal, "foo", "bar"}, {NotEqual, "bar", "baz"}}},
		{"comma inside quotes", `a="x,y}"`, []m{{Equal, "a", "x,y}"}}},
		{"dots and colons unquoted", `instance=db-1.example.com:9100`, []m{{Equal, "instance", "db-1.example.com:9100"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseList(tt.input)
			if err != nil {
				t.Fatalf("ParseList(%q): %v", tt.input, err)
			}
			if diff := cmp.Diff(tt.want, flat(got)); diff != "" {
				t.Errorf("ParseList(%q) mismatch (-want +got):\n%s", tt.input, diff)
			}
		})
	}
}

func TestParseListErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		input  string
		offset int
		msg    string
	}{
		{"lone comma", `,`, 0, `unexpected ",": expected a label name`},
		{"comma in braces", `{,}`, 1, `unexpected ",": expected a label name`},
		{"open brace only", `{`, 1, "expected a close brace"},
		{"close brace only", `}`, 0, "without an opening brace"},
		{"no open brace", `foo=bar}`, 7, "without an opening brace"},
		{"no close brace", `{foo=bar`, 8, "expected a close brace"},
		{"text after close brace", `{foo=bar} x`, 10, `unexpected "x" after the close brace`},
		{"garbage before quotes", `{foo=:"bar"}`, 6, `unexpected "\"bar\"": expected a comma or a close brace`},
		{"invalid escape", `{foo="bar\w"}`, 5, "invalid escape sequence"},
		{"unquoted backslash", `{foo=bar\n}`, 8, `unexpected '\\'`},
		{"single quotes", `foo='bar'`, 4, "quote values with double quotes"},
		{"invalid utf8 escape", `{"foo"="\xf0\x9f"}`, 7, "not valid UTF-8"},
		{"invalid utf8 raw", "foo=\xff", 4, "invalid UTF-8"},
		{"missing value", `foo=`, 4, "expected a label value"},
		{"missing value before comma", `{foo=,bar=baz}`, 5, "expected a label value"},
		{"missing operator", `foo bar`, 4, "expected an operator"},
		{"bang alone", `foo!bar`, 3, `unexpected '!'`},
		{"tilde alone", `foo~bar`, 3, `unexpected '~'`},
		{"unterminated", `foo="bar`, 4, "unterminated quoted string"},
		{"escaped closing quote", `foo="bar\"`, 4, "unterminated quoted string"},
		{"empty name", `""="x"`, 0, "empty label name"},
		{"bad regexp", `foo=~"(a"`, 5, "invalid regular expression"},
		{"double comma", `a=b,,c=d`, 4, `unexpected ","`},
		{"missing comma", `a=b c=d`, 4, "expected a comma or the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseList(tt.input)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseList(%q) error = %v, want a *SyntaxError", tt.input, err)
			}
			if se.Offset != tt.offset || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("ParseList(%q) error = %q (offset %d), want offset %d and %q", tt.input, err, se.Offset, tt.offset, tt.msg)
			}
			if !strings.Contains(err.Error(), "at byte") {
				t.Errorf("ParseList(%q) error %q does not name the position", tt.input, err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{foo=bar}`, `{foo=bar,}`, `foo=bar`, `"foo"="bar"`} {
		got, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if want := (m{Equal, "foo", "bar"}); flat(Matchers{got})[0] != want {
			t.Errorf("Parse(%q) = %+v, want %+v", in, flat(Matchers{got})[0], want)
		}
	}
	for in, msg := range map[string]string{
		``:                "no matcher",
		`{}`:              "no matcher",
		`foo=bar,bar=baz`: "expected 1 matcher, found 2",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Parse(%q) error = %v, want %q", in, err, msg)
		}
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	if _, err := ParseList(strings.Repeat("a", MaxInputBytes+1)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("ParseList(too long) error = %v, want a length error", err)
	}
	many := strings.Repeat("a=b,", MaxMatchers+1)
	if _, err := ParseList(many); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("ParseList(%d matchers) error = %v, want a count error", MaxMatchers+1, err)
	}
	if _, err := ParseStrings([]string{strings.Repeat("a=b,", 40), strings.Repeat("c=d,", 40)}); err == nil {
		t.Error("ParseStrings(80 matchers) = nil error, want a count error")
	}
}

func TestParseStrings(t *testing.T) {
	t.Parallel()
	got, err := ParseStrings([]string{`severity=~"critical|page"`, `{team!="db", env="prod"}`})
	if err != nil {
		t.Fatal(err)
	}
	want := []m{{Regexp, "severity", "critical|page"}, {NotEqual, "team", "db"}, {Equal, "env", "prod"}}
	if diff := cmp.Diff(want, flat(got)); diff != "" {
		t.Errorf("ParseStrings mismatch (-want +got):\n%s", diff)
	}
	_, err = ParseStrings([]string{`a=b`, `c=`})
	if err == nil || !strings.HasPrefix(err.Error(), "matchers[1]: ") {
		t.Errorf("ParseStrings with a bad second entry: error = %v, want it to start with matchers[1]", err)
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`foo=bar`, `foo="bar"`},
		{`foo!=""`, `foo!=""`},
		{`foo=~"a|b"`, `foo=~"a|b"`},
		{`foo!~"x\\d+"`, `foo!~"x\\d+"`},
		{`foo="say \"hi\"\n"`, `foo="say \"hi\"\n"`},
		{`"service name"=api`, `"service name"="api"`},
		{`"a=b"=c`, `"a=b"="c"`},
		{`föö=🙂`, `föö="🙂"`},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if got.String() != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got.String(), tt.want)
		}
	}
	ms, err := ParseList(`a=b, c=~"d|e"`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ms.String(), `{a="b", c=~"d|e"}`; got != want {
		t.Errorf("Matchers.String() = %q, want %q", got, want)
	}
}
