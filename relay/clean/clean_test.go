package clean

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"plain", "web-1:9100", "web-1:9100"},
		{"unicode kept", "Störung 東京 🙈 עברית", "Störung 東京 🙈 עברית"},
		{"emoji joiner kept", "👩\u200d💻", "👩\u200d💻"},
		{"forged line", "api-1\n[RESOLVED:1] AllGood", "api-1<U+000A>[RESOLVED:1] AllGood"},
		{"tab", "a\tb", "a<U+0009>b"},
		{"bare CR", "a\rb", "a<U+000D>b"},
		{"CR LF", "a\r\nb", "a<U+000D><U+000A>b"},
		{"BEL", "ding\a", "ding<U+0007>"},
		{"ESC", "\x1b[31mred", "<U+001B>[31mred"},
		{"DEL", "a\x7f", "a<U+007F>"},
		{"NEL", "a\u0085b", "a<U+0085>b"},
		{"C1", "\u009b2J", "<U+009B>2J"},
		{"RLO", "evil\u202egnp.exe", "evil<U+202E>gnp.exe"},
		{"embeddings", "\u202a\u202b\u202c\u202d", "<U+202A><U+202B><U+202C><U+202D>"},
		{"isolates", "\u2066\u2067\u2068\u2069", "<U+2066><U+2067><U+2068><U+2069>"},
		{"marks", "1\u200e2\u200f3\u061c", "1<U+200E>2<U+200F>3<U+061C>"},
		{"separators", "a\u2028b\u2029c", "a<U+2028>b<U+2029>c"},
		{"invisible", "prod\u200b\u2060\ufeff", "prod<U+200B><U+2060><U+FEFF>"},
		{"NUL", "a\x00b", "a<U+0000>b"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"escape-looking text kept", "<U+000A>", "<U+000A>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Line(tt.in); got != tt.want {
				t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"plain", "Load above 90%.", "Load above 90%."},
		{"lines and tabs kept", "a\n\tb\n", "a\n\tb\n"},
		{"CR LF becomes LF", "a\r\nb\r\n", "a\nb\n"},
		{"bare CR", "a\rb", "a<U+000D>b"},
		{"CR CR LF", "a\r\r\nb", "a<U+000D>\nb"},
		{"trailing CR", "a\r", "a<U+000D>"},
		{"BEL and ESC", "\a\x1b]0;x", "<U+0007><U+001B>]0;x"},
		{"RLO", "\u202eabc", "<U+202E>abc"},
		{"separators", "a\u2028b\u2029", "a<U+2028>b<U+2029>"},
		{"vertical tab and form feed", "a\vb\fc", "a<U+000B>b<U+000C>c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"https://grafana.example/d/x?var=1", "https://grafana.example/d/x?var=1"},
		{"HTTP://Prometheus.example:9090/graph", "HTTP://Prometheus.example:9090/graph"},
		{" https://a.example/ \n", "https://a.example/"},
		{"https://a.example/\n[RESOLVED:1] AllGood", "https://a.example/<U+000A>[RESOLVED:1] AllGood"},
		{"https://a.example/\u202e", "https://a.example/<U+202E>"},
		{"javascript:alert(1)", RemovedLink},
		{"JavaScript:alert(1)", RemovedLink},
		{"\njavascript:alert(1)", RemovedLink},
		{"data:text/html,<b>x</b>", RemovedLink},
		{"file:///etc/passwd", RemovedLink},
		{"sip:ceo@contoso.com", RemovedLink},
		{"https:evil", RemovedLink},
		{"//evil.example/x", RemovedLink},
		{"/graph?g0.expr=up", RemovedLink},
		{RemovedLink, RemovedLink},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURLName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"runbook_url": true, "generatorURL": true, "html_url": true, "url": true, "link": true,
		"dashboard_Link": true, "URL": true, "summary": false, "urls": false, "links": false,
		"": false, "rl": false, "description": false,
	} {
		if got := URLName(name); got != want {
			t.Errorf("URLName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNoAllocationWhenClean(t *testing.T) {
	s := strings.Repeat("web-1:9100 Störung ", 20)
	allocs := testing.AllocsPerRun(100, func() {
		_ = Line(s)
		_ = Text(s + "\n\t")
		_ = URL("https://a.example/" + s[:10])
	})
	// URL's argument is built by the closure: one allocation, none by the
	// functions.
	if allocs > 1 {
		t.Errorf("cleaning clean text allocates %v times, want at most 1", allocs)
	}
}

// FuzzClean checks the promises of the package on any string: no
// forbidden code point survives (line feed and tab only in Text), the
// result is valid UTF-8, and cleaning twice changes nothing.
func FuzzClean(f *testing.F) {
	for _, s := range []string{
		"", "plain", "api-1\n[RESOLVED:1] AllGood", "\u202eevil", "\a\x1b\r\u2028\u2029", "a\r\nb\r",
		"javascript:alert(1)", "https://ok.example/\n", "\xff\xfe", "\u0085\u009f\u200b\ufeff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, fn := range map[string]func(string) string{"Line": Line, "Text": Text, "URL": URL} {
			got := fn(s)
			if !utf8.ValidString(got) {
				t.Fatalf("%s(%q) = %q, not valid UTF-8", name, s, got)
			}
			for _, r := range got {
				if Forbidden(r) && !(name == "Text" && (r == '\n' || r == '\t')) {
					t.Fatalf("%s(%q) = %q, which holds %U", name, s, got, r)
				}
			}
			if again := fn(got); again != got {
				t.Fatalf("%s(%q) = %q, but %s of that is %q", name, s, got, name, again)
			}
		}
		if got := URL(s); got != "" && got != RemovedLink && !IsHTTP(got) {
			t.Fatalf("URL(%q) = %q, neither empty, removed nor http", s, got)
		}
	})
}
