package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay"
)

type listPage struct {
	Deliveries []json.RawMessage `json:"deliveries"`
	NextCursor string            `json:"nextCursor,omitempty"`
}

// checkID rejects what cannot be an operationId (ASCII, at most 50
// characters) before it goes into a URL path.
func checkID(id string) error {
	if id == "" || len(id) > 50 || id == "." || id == ".." {
		return usageError{fmt.Errorf("%q is not an operationId", truncateRunes(clean(id, false), 60))}
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return usageError{fmt.Errorf("%q is not an operationId", truncateRunes(clean(id, false), 60))}
		}
	}
	return nil
}

// printJSON writes body indented, keeping the server's field order.
func printJSON(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		return fmt.Errorf("indent JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// clean makes text from the server safe for a terminal: control characters
// (escape sequences included) become spaces; with multiline, line breaks
// and tabs stay.
func clean(s string, multiline bool) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Map(func(r rune) rune {
		switch {
		case multiline && (r == '\n' || r == '\t'):
			return r
		case r == '\r' && multiline:
			return -1
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return ' '
		}
		return r
	}, s)
}

// oneLine cleans s and collapses its whitespace to single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(clean(s, false)), " ")
}

// truncateRunes cuts s to at most n runes, marking the cut with "…".
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// parseWhen reads a --since or --until value: an RFC 3339 time, or a
// duration (90m, 1h, 2d) meaning that long before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100_000 {
			return time.Time{}, fmt.Errorf("want an RFC 3339 time (2026-11-27T13:00:00Z) or a duration before now (90m, 1h, 2d), got %q", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("want an RFC 3339 time (2026-11-27T13:00:00Z) or a duration before now (90m, 1h, 2d), got %q", s)
		}
	}
	return now.Add(-d), nil
}

// humanDuration writes d for people: "230ms", "1.5s", "38s", "5m 0s",
// "2h 5m", "3d 4h"; the longer it is, the fewer digits it keeps.
func humanDuration(d time.Duration) string {
	if d < 0 {
		return "-" + humanDuration(-d)
	}
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Minute-time.Second/2:
		return d.Round(time.Second).String()
	case d < time.Hour-time.Second/2:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm %ds", d/time.Minute, d%time.Minute/time.Second)
	case d < 24*time.Hour-time.Minute/2:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh %dm", d/time.Hour, d%time.Hour/time.Minute)
	default:
		d = d.Round(time.Hour)
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	}
}

func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func localTimeZone(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000 MST")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// tableCell makes a server string fit one tabwriter cell.
func tableCell(s string) string { return dash(oneLine(s)) }

// knownState checks a --state value against relay's states.
func knownState(s string) error {
	if _, err := relay.ParseState(s); err != nil {
		names := make([]string, len(relay.States))
		for i, st := range relay.States {
			names[i] = string(st)
		}
		return usageError{fmt.Errorf("--state: %q is not one of %s", truncateRunes(clean(s, false), 40), strings.Join(names, ", "))}
	}
	return nil
}

// newTable returns a tabwriter for the CLI's tables.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }
