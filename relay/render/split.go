package render

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// RenderParts renders the template name on d as one or more chat messages,
// each at most MaxBytes bytes of UTF-8.
//
// A notification that fits is one message. A longer one is split at alert
// boundaries first: the template is rendered on consecutive runs of
// d.Alerts (d.AllAlerts keeps the whole group, so the header stays the
// same on every part). An alert too long even alone is split at
// whitespace, and a word longer than a message is cut at a character
// boundary. Parts are numbered "(1/3) ". At most MaxParts are returned; if
// more were needed, the last says how many alerts were left out.
func (e *Engine) RenderParts(name string, d Data) ([]string, error) {
	ent, ok := e.entries[name]
	if !ok {
		return nil, fmt.Errorf("render template %q: %w", name, ErrUnknownTemplate)
	}
	// Clean once, not on each of the many renders a split takes.
	v := d.cleaned()
	full, err := ent.render(name, v)
	if err == nil && len(full) <= e.maxBytes {
		return []string{full}, nil
	}
	// A whole notification larger than MaxOutputBytes may still render in
	// pieces: only a single alert that large is an error.
	if err != nil && (!errors.Is(err, ErrTooLarge) || len(d.Alerts) <= 1) {
		return nil, err
	}
	s := splitter{
		ent:    ent,
		name:   name,
		data:   v,
		budget: e.maxBytes - partReserve(e.maxParts) - noteReserve,
		limit:  e.maxParts + 1, // one more than allowed tells us to cut
	}
	if len(d.Alerts) <= 1 {
		s.addText(full, 0)
	} else if err := s.byAlerts(len(full)); err != nil {
		return nil, err
	}
	return s.finish(e.maxParts), nil
}

// noteReserve is room kept in every part for the note a cut adds.
const noteReserve = 80

// partReserve is the length of the widest part number "(n/n) ".
func partReserve(maxParts int) int {
	return len(fmt.Sprintf("(%d/%d) ", maxParts, maxParts))
}

// piece is one part before numbering, with the alerts it covers.
type piece struct {
	text string
	// first is the index of the first alert shown in text; end is one past
	// the last alert whose text ends in this piece (first when the piece
	// ends inside an alert).
	first, end int
}

type splitter struct {
	ent    entry
	name   string
	data   *Data // cleaned
	budget int   // bytes per piece
	limit  int   // pieces to produce at most
	pieces []piece
}

func (s *splitter) full() bool { return len(s.pieces) >= s.limit }

// render renders alerts [i, j) of the notification. Only the last run shows
// Alertmanager's count of truncated alerts, so it is said once.
func (s *splitter) render(i, j int) (string, error) {
	truncated := s.data.TruncatedAlerts
	if j < len(s.data.Alerts) {
		truncated = 0
	}
	return s.ent.render(s.name, s.data.part(i, j, truncated))
}

// fits renders alerts [i, j) and reports whether the text fits a piece. An
// output over MaxOutputBytes does not fit; other errors are returned.
func (s *splitter) fits(i, j int) (string, bool, error) {
	text, err := s.render(i, j)
	if errors.Is(err, ErrTooLarge) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return text, len(text) <= s.budget, nil
}

// byAlerts packs runs of alerts into pieces, each run as long as fits.
// fullLen, the length of the whole rendering (0 if unknown), gives a first
// guess of how many alerts fit in a piece.
func (s *splitter) byAlerts(fullLen int) error {
	n := len(s.data.Alerts)
	guess := 1
	if fullLen > 0 {
		guess = max(1, s.budget*n/fullLen)
	}
	for i := 0; i < n && !s.full(); {
		k, text, err := s.longestRun(i, guess)
		if err != nil {
			return err
		}
		if k == 0 {
			// Alert i alone is too long: split its text.
			if text, err = s.render(i, i+1); err != nil {
				return err
			}
			s.addText(text, i)
			i++
			continue
		}
		s.pieces = append(s.pieces, piece{text: text, first: i, end: i + k})
		i += k
		guess = k
	}
	return nil
}

// longestRun returns the largest k such that alerts [i, i+k) fit in one
// piece, with their text; k is 0 when alert i alone does not fit. The search
// starts at guess, the length of the previous run, since neighbouring
// alerts tend to be alike: then two renderings settle a run. Otherwise it
// grows the step exponentially, then bisects, so a notification costs
// O(log n) renderings per piece, not O(n).
func (s *splitter) longestRun(i, guess int) (int, string, error) {
	n := len(s.data.Alerts) - i
	good, bad := 0, n+1 // runs of good alerts fit, runs of bad do not
	goodText := ""
	try, step := min(guess, n), 1
	for {
		text, ok, err := s.fits(i, i+try)
		if err != nil {
			return 0, "", err
		}
		if ok {
			good, goodText = try, text
		} else {
			bad = try
		}
		if bad-good <= 1 {
			return good, goodText, nil
		}
		if bad > n { // no upper bound yet: step up
			try = min(good+step, n)
			step *= 2
		} else {
			try = good + (bad-good)/2
		}
	}
}

// addText splits text, which shows alert i (and only it), into pieces.
func (s *splitter) addText(text string, i int) {
	for _, t := range splitText(text, s.budget) {
		if s.full() {
			return
		}
		s.pieces = append(s.pieces, piece{text: t, first: i, end: i})
	}
	// All of the alert's text is in: the last piece completes it.
	s.pieces[len(s.pieces)-1].end = min(i+1, len(s.data.Alerts))
}

// finish keeps at most maxParts pieces, notes what was cut, and numbers
// the parts.
func (s *splitter) finish(maxParts int) []string {
	pieces := s.pieces
	if len(pieces) > maxParts {
		pieces = pieces[:maxParts]
		last := &pieces[maxParts-1]
		// Alerts whose text did not start in a kept piece, plus those
		// Alertmanager had already left out (the last part, which said so,
		// is gone).
		more := len(s.data.Alerts) - last.end + s.data.TruncatedAlerts
		if last.end == last.first && last.first < len(s.data.Alerts) { // cut inside an alert
			more--
			last.text += "\n[message cut: too long]"
		}
		switch {
		case more == 1:
			last.text += "\n+1 more alert not shown"
		case more > 1:
			last.text += fmt.Sprintf("\n+%d more alerts not shown", more)
		}
	}
	parts := make([]string, len(pieces))
	for k, p := range pieces {
		if len(pieces) == 1 {
			parts[k] = p.text
			continue
		}
		parts[k] = fmt.Sprintf("(%d/%d) %s", k+1, len(pieces), p.text)
	}
	return parts
}

// splitText cuts s into pieces of at most limit bytes: at the last line break
// in the second half of the window, else at the last space or tab, else (one
// word longer than limit) at the last character boundary. Whitespace at a cut
// is dropped. limit must be at least utf8.UTFMax. Invalid UTF-8 is cut
// anywhere.
func splitText(s string, limit int) []string {
	var out []string
	s = strings.TrimSpace(s)
	for len(s) > limit {
		window := s[:limit+1] // a cut at limit keeps limit bytes
		cut := strings.LastIndexByte(window, '\n')
		if cut < limit/2 {
			cut = strings.LastIndexAny(window, " \t\n")
		}
		if cut <= 0 {
			// A character starts at most UTFMax-1 bytes before limit.
			cut = limit
			for k := 1; k < utf8.UTFMax && !utf8.RuneStart(s[cut]); k++ {
				cut--
			}
			if !utf8.RuneStart(s[cut]) {
				cut = limit // not UTF-8 here: any cut will do
			}
		}
		out = append(out, strings.TrimRight(s[:cut], " \t\r\n"))
		s = strings.TrimLeft(s[cut:], " \t\r\n")
	}
	if s != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}
