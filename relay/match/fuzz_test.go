package match

import (
	"testing"
)

// FuzzParseList checks that no input panics the parser and that every list
// it accepts prints as text that parses back to the same matchers, unless
// quoting made that text longer than MaxInputBytes.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{foo=bar}`, `foo=~"a|b",bar!="x"`, `{"a b"!~".*",}`, `foo="\"\\\n"`,
		`{foo=🙂bar}`, `a=b,,`, `{a="x,y}"}`, "a=\xff", `a=~"(a"`, `"=~"!="}"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseList(s)
		if err != nil || len(ms.String()) > MaxInputBytes {
			return
		}
		again, err := ParseList(ms.String())
		if err != nil {
			t.Fatalf("ParseList(%q).String() = %q, which does not parse: %v", s, ms.String(), err)
		}
		if len(again) != len(ms) {
			t.Fatalf("ParseList(%q) has %d matchers, its String() %q has %d", s, len(ms), ms.String(), len(again))
		}
		for i := range ms {
			if flat(again)[i] != flat(ms)[i] {
				t.Fatalf("ParseList(%q)[%d] = %+v, after String() %+v", s, i, flat(ms)[i], flat(again)[i])
			}
			one, err := Parse(ms[i].String())
			if err != nil || flat(Matchers{one})[0] != flat(ms)[i] {
				t.Fatalf("Parse(%q) = %v, %v; want %+v", ms[i].String(), one, err, flat(ms)[i])
			}
		}
	})
}
