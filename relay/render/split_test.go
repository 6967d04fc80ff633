package render

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay/alertmanager"
)

var partNumber = regexp.MustCompile(`^\((\d+)/(\d+)\) `)

// checkParts asserts the invariants of every RenderParts result: parts
// within limit, valid UTF-8, numbered 1..n when more than one.
func checkParts(t testing.TB, parts []string, limit int) {
	t.Helper()
	if len(parts) == 0 {
		t.Fatal("RenderParts returned no part")
	}
	for i, p := range parts {
		if len(p) > limit {
			t.Errorf("part %d is %d bytes, over the limit %d", i+1, len(p), limit)
		}
		if !utf8.ValidString(p) {
			t.Errorf("part %d is not valid UTF-8: %q", i+1, p)
		}
		if len(parts) == 1 {
			if partNumber.MatchString(p) {
				t.Errorf("lone part is numbered: %q", p)
			}
			continue
		}
		m := partNumber.FindStringSubmatch(p)
		if m == nil || m[1] != fmt.Sprint(i+1) || m[2] != fmt.Sprint(len(parts)) {
			t.Errorf("part %d starts %q, want \"(%d/%d) \"", i+1, p[:min(len(p), 12)], i+1, len(parts))
		}
	}
}

func TestRenderPartsFits(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})
	d := NewData(message([]string{"alertname"}, cpuAlert(1), cpuAlert(2)), "r", "c")
	parts, err := e.RenderParts("alertmanager", d)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := e.Render("alertmanager", d)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0] != whole {
		t.Errorf("RenderParts() = %q, want the single message %q", parts, whole)
	}
}

func TestRenderPartsByAlerts(t *testing.T) {
	t.Parallel()
	const limit = 1024
	e := newTestEngine(t, Options{MaxBytes: limit})
	var alerts []alertmanager.Alert
	for i := range 12 {
		alerts = append(alerts, cpuAlert(i))
	}
	m := message([]string{"alertname", "env"}, alerts...)
	m.TruncatedAlerts = 4
	d := NewData(m, "r", "c")

	parts, err := e.RenderParts("alertmanager", d)
	if err != nil {
		t.Fatal(err)
	}
	checkParts(t, parts, limit)
	if len(parts) < 3 {
		t.Fatalf("RenderParts() = %d parts, want several for 12 alerts in %d bytes", len(parts), limit)
	}
	for i, p := range parts {
		// Every part carries the whole group's header.
		if body := partNumber.ReplaceAllString(p, ""); !strings.HasPrefix(body, "[FIRING:12] HighCPU prod") {
			t.Errorf("part %d starts %q, want the group header", i+1, body[:40])
		}
		// Alertmanager's truncation count is said once, in the last part.
		if got, want := strings.Contains(p, "+4 more alerts not shown"), i == len(parts)-1; got != want {
			t.Errorf("part %d mentions the 4 truncated alerts: %v, want %v", i+1, got, want)
		}
	}
	all := strings.Join(parts, "\n")
	for i := range 12 {
		if n := strings.Count(all, fmt.Sprintf("* instance=web-%d:9100\n", i)); n != 1 {
			t.Errorf("alert web-%d appears %d times across parts, want once", i, n)
		}
	}
	checkGolden(t, "split_by_alerts", strings.Join(parts, "\n-----\n")+"\n")
}

func TestRenderPartsLongAlert(t *testing.T) {
	t.Parallel()
	const limit = 600
	e := newTestEngine(t, Options{MaxBytes: limit})
	words := strings.Repeat("Störung im Zahlungsverkehr, bitte prüfen. ", 40) // ~1.7 KB of words
	blob := strings.Repeat("日本語", 150)                                        // 1350 bytes without a space
	a := annotate(cpuAlert(1), "description", words+"\n"+blob+" end")
	d := NewData(message([]string{"alertname"}, a), "r", "c")

	parts, err := e.RenderParts("alertmanager", d)
	if err != nil {
		t.Fatal(err)
	}
	checkParts(t, parts, limit)
	whole, err := e.Render("alertmanager", d)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing lost: the parts hold every non-space byte of the whole.
	strip := func(s string) string { return strings.Join(strings.Fields(s), "") }
	var bodies []string
	for _, p := range parts {
		bodies = append(bodies, partNumber.ReplaceAllString(p, ""))
	}
	joined := strip(strings.Join(bodies, " "))
	if joined != strip(whole) {
		t.Errorf("parts joined differ from the whole message\nparts: %q\nwhole: %q", joined, strip(whole))
	}
	// Words are not cut: every part but those inside the blob ends at a word end.
	for i, p := range parts[:len(parts)-1] {
		if strings.HasSuffix(p, "prüf") || strings.HasSuffix(p, "Zahlungs") {
			t.Errorf("part %d ends inside a word: %q", i+1, p[len(p)-20:])
		}
	}
}

func TestRenderPartsMaxParts(t *testing.T) {
	t.Parallel()
	const limit = 512
	e := newTestEngine(t, Options{MaxBytes: limit, MaxParts: 3})
	var alerts []alertmanager.Alert
	for i := range 40 {
		alerts = append(alerts, cpuAlert(i))
	}
	m := message([]string{"alertname"}, alerts...)
	m.TruncatedAlerts = 5
	d := NewData(m, "r", "c")

	parts, err := e.RenderParts("alertmanager", d)
	if err != nil {
		t.Fatal(err)
	}
	checkParts(t, parts, limit)
	if len(parts) != 3 {
		t.Fatalf("RenderParts() = %d parts, want MaxParts = 3", len(parts))
	}
	shown := 0
	for _, p := range parts {
		shown += strings.Count(p, "* instance=web-")
	}
	wantNote := fmt.Sprintf("\n+%d more alerts not shown", 40-shown+5)
	if last := parts[2]; !strings.HasSuffix(last, wantNote) {
		t.Errorf("last part = %q, want it to end with %q", last, wantNote)
	}
}

func TestSplitText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"fits", "a b c", 5, []string{"a b c"}},
		{"empty", "", 5, []string{""}},
		{"at space", "aaa bbb ccc", 7, []string{"aaa bbb", "ccc"}},
		{"space right after window", "aaaa bbbb", 4, []string{"aaaa", "bbbb"}},
		{"prefers a late newline", "aaaaaa\nbb cc dd", 10, []string{"aaaaaa", "bb cc dd"}},
		{"ignores an early newline", "a\nbbbbbb cc dd", 10, []string{"a\nbbbbbb", "cc dd"}},
		{"hard cut", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"hard cut keeps runes whole", "ééééé", 5, []string{"éé", "éé", "é"}},
		{"four-byte runes", "😀😀😀", 5, []string{"😀", "😀", "😀"}},
		{"invalid UTF-8 still ends", strings.Repeat("\x80", 12), 5, []string{"\x80\x80\x80\x80\x80", "\x80\x80\x80\x80\x80", "\x80\x80"}},
		{"drops whitespace at cuts", "aaaa    \n\n   bbbb", 6, []string{"aaaa", "bbbb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := splitText(tt.in, tt.max)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("splitText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func FuzzRenderParts(f *testing.F) {
	f.Add("CPU above 90%", "web-1", uint8(3), uint16(300), uint8(0))
	f.Add(strings.Repeat("x", 3000), "日本語", uint8(1), uint16(256), uint8(0))
	f.Add(strings.Repeat("ab ", 900), "a\nb", uint8(30), uint16(700), uint8(2))
	f.Add("é😀\n\n\n  \t", "", uint8(200), uint16(256), uint8(1))
	e := map[int]*Engine{}
	for _, parts := range []int{1, 2, 10} {
		e[parts] = newTestEngine(f, Options{MaxParts: parts})
	}
	f.Fuzz(func(t *testing.T, desc, label string, n uint8, limit uint16, maxParts uint8) {
		desc, label = strings.ToValidUTF8(desc, "?"), strings.ToValidUTF8(label, "?")
		eng := e[[]int{1, 2, 10}[int(maxParts)%3]]
		// Engines are built once; vary the limit through a copy.
		local := *eng
		local.maxBytes = MinMaxBytes + int(limit)%4096
		var alerts []alertmanager.Alert
		for i := range int(n)%60 + 1 {
			a := annotate(cpuAlert(i), "description", desc)
			a.Labels["tag"] = label
			alerts = append(alerts, a)
		}
		d := NewData(message([]string{"alertname"}, alerts...), "r", "c")
		parts, err := local.RenderParts("alertmanager", d)
		if err != nil {
			t.Fatalf("RenderParts: %v", err)
		}
		checkParts(t, parts, local.maxBytes)
		if len(parts) > local.maxParts {
			t.Errorf("RenderParts() = %d parts, want at most %d", len(parts), local.maxParts)
		}
	})
}
