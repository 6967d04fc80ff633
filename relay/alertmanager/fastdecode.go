package alertmanager

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// decodeFast parses the notifications Alertmanager actually sends, in one
// pass and without reflection: about five times faster than encoding/json,
// which was a quarter of a webhook's CPU. It accepts a strict subset of
// what encoding/json accepts and, for that subset, builds exactly the same
// Message (FuzzDecodeFast checks this). On anything outside it — a syntax
// error, a null, a duplicate or differently cased field name, a type
// mismatch, a surrogate escape, invalid UTF-8, deep nesting — it returns
// ok false and Decode hands the body to encoding/json, which then defines
// the result and the error message.
func decodeFast(body []byte) (m *Message, ok bool) {
	d := fastDecoder{b: body}
	m = &Message{}
	if !d.message(m) {
		return nil, false
	}
	d.space()
	if d.i != len(d.b) {
		return nil, false
	}
	return m, true
}

type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next skips white space and reports whether c comes next, consuming it.
func (d *fastDecoder) next(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// object parses {"key": value, ...}, calling field for each key with the
// decoder at the value. field returns false to give up.
func (d *fastDecoder) object(field func(key []byte) bool) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	for {
		d.space()
		key, ok := d.rawKey()
		if !ok || !d.next(':') || !field(key) {
			return false
		}
		if d.next('}') {
			return true
		}
		if !d.next(',') {
			return false
		}
	}
}

// rawKey reads an object key without escapes: every key this decoder
// knows is plain ASCII, and an escaped one goes the slow way.
func (d *fastDecoder) rawKey() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// str reads a string value, decoding the escapes encoding/json decodes the
// same way (all but surrogates).
func (d *fastDecoder) str() (string, bool) {
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	j := start
	for j < len(d.b) {
		c := d.b[j]
		if c == '"' {
			if !utf8.Valid(d.b[start:j]) {
				return "", false
			}
			d.i = j + 1
			return string(d.b[start:j]), true
		}
		if c == '\\' {
			return d.escapedStr(start)
		}
		if c < 0x20 {
			return "", false
		}
		j++
	}
	return "", false
}

func (d *fastDecoder) escapedStr(start int) (string, bool) {
	out := make([]byte, 0, 64)
	j := start
	for j < len(d.b) {
		c := d.b[j]
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return "", false
			}
			d.i = j + 1
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(d.b) {
			return "", false
		}
		switch e := d.b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if j+6 > len(d.b) {
				return "", false
			}
			r, err := strconv.ParseUint(string(d.b[j+2:j+6]), 16, 32)
			if err != nil || (r >= 0xD800 && r < 0xE000) {
				return "", false
			}
			out = utf8.AppendRune(out, rune(r))
			j += 6
			continue
		default:
			return "", false
		}
		j += 2
	}
	return "", false
}

// kv reads an object of string values into *dst, made on first use.
func (d *fastDecoder) kv(dst *KV) bool {
	if *dst != nil {
		return false // a repeated field: encoding/json merges, go slow
	}
	m := KV{}
	*dst = m
	return d.object(func(key []byte) bool {
		if !utf8.Valid(key) {
			return false
		}
		v, ok := d.str()
		if ok {
			m[string(key)] = v
		}
		return ok
	})
}

// set reads a string field once; a repeated field goes the slow way.
func (d *fastDecoder) set(seen *uint32, bit uint32, dst *string) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	v, ok := d.str()
	*dst = v
	return ok
}

func (d *fastDecoder) message(m *Message) bool {
	var seen uint32
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "version":
			return d.set(&seen, 1<<0, &m.Version)
		case "groupKey":
			return d.set(&seen, 1<<1, &m.GroupKey)
		case "receiver":
			return d.set(&seen, 1<<2, &m.Receiver)
		case "status":
			return d.set(&seen, 1<<3, &m.Status)
		case "externalURL":
			return d.set(&seen, 1<<4, &m.ExternalURL)
		case "truncatedAlerts":
			if seen&(1<<5) != 0 {
				return false
			}
			seen |= 1 << 5
			return d.integer(&m.TruncatedAlerts)
		case "groupLabels":
			return d.kv(&m.GroupLabels)
		case "commonLabels":
			return d.kv(&m.CommonLabels)
		case "commonAnnotations":
			return d.kv(&m.CommonAnnotations)
		case "alerts":
			if m.Alerts != nil {
				return false
			}
			return d.alerts(&m.Alerts)
		default:
			if !knownElsewise(key, messageFields) {
				return false
			}
			return d.skip(0)
		}
	})
}

var (
	messageFields = []string{"version", "groupKey", "receiver", "status", "externalURL", "truncatedAlerts",
		"groupLabels", "commonLabels", "commonAnnotations", "alerts"}
	alertFields = []string{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
)

// knownElsewise reports whether key is free to skip: encoding/json would
// also store a key that matches a field only case-insensitively (or by
// Unicode folding), so such keys go the slow way.
func knownElsewise(key []byte, fields []string) bool {
	for _, f := range fields {
		if foldsTo(key, f) {
			return false
		}
	}
	return true
}

// foldsTo is a cheap superset of bytes.EqualFold(key, f) for ASCII f: any
// non-ASCII byte in key counts as a possible match (Kelvin sign, long s).
func foldsTo(key []byte, f string) bool {
	if len(key) != len(f) {
		for _, c := range key {
			if c >= utf8.RuneSelf {
				return true
			}
		}
		return false
	}
	for i := range key {
		c := key[i]
		if c >= utf8.RuneSelf {
			return true
		}
		if c|0x20 != f[i]|0x20 {
			return false
		}
	}
	return true
}

func (d *fastDecoder) alerts(dst *Alerts) bool {
	if !d.next('[') {
		return false
	}
	out := Alerts{}
	if d.next(']') {
		*dst = out
		return true
	}
	for {
		var a Alert
		if !d.alert(&a) {
			return false
		}
		out = append(out, a)
		if d.next(']') {
			*dst = out
			return true
		}
		if !d.next(',') {
			return false
		}
	}
}

func (d *fastDecoder) alert(a *Alert) bool {
	var seen uint32
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "status":
			return d.set(&seen, 1<<0, &a.Status)
		case "generatorURL":
			return d.set(&seen, 1<<1, &a.GeneratorURL)
		case "fingerprint":
			return d.set(&seen, 1<<2, &a.Fingerprint)
		case "labels":
			return d.kv(&a.Labels)
		case "annotations":
			return d.kv(&a.Annotations)
		case "startsAt":
			if seen&(1<<3) != 0 {
				return false
			}
			seen |= 1 << 3
			return d.time(&a.StartsAt)
		case "endsAt":
			if seen&(1<<4) != 0 {
				return false
			}
			seen |= 1 << 4
			return d.time(&a.EndsAt)
		default:
			if !knownElsewise(key, alertFields) {
				return false
			}
			return d.skip(0)
		}
	})
}

// time reads a timestamp with time.Time's own UnmarshalJSON, given the
// quoted token as encoding/json gives it; escapes go the slow way.
func (d *fastDecoder) time(t *time.Time) bool {
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return false
	}
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			if err := t.UnmarshalJSON(d.b[d.i : j+1]); err != nil {
				return false
			}
			d.i = j + 1
			return true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return false
		}
	}
	return false
}

// integer reads a JSON integer that fits an int; fractions and exponents
// (which encoding/json refuses for an int field) go the slow way.
func (d *fastDecoder) integer(dst *int) bool {
	d.space()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	n := d.i - digits
	if n == 0 || (n > 1 && d.b[digits] == '0') {
		return false
	}
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	v, err := strconv.Atoi(string(d.b[start:d.i]))
	if err != nil {
		return false
	}
	*dst = v
	return true
}

// maxSkipDepth bounds the nesting of values skipped; deeper ones go the
// slow way, which has its own limit.
const maxSkipDepth = 64

// skip passes over one JSON value of any type, checking its syntax.
func (d *fastDecoder) skip(depth int) bool {
	if depth > maxSkipDepth {
		return false
	}
	d.space()
	if d.i >= len(d.b) {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '"':
		_, ok := d.str()
		return ok
	case c == '{':
		return d.object(func(key []byte) bool { return utf8.Valid(key) && d.skip(depth+1) })
	case c == '[':
		d.i++
		if d.next(']') {
			return true
		}
		for {
			if !d.skip(depth + 1) {
				return false
			}
			if d.next(']') {
				return true
			}
			if !d.next(',') {
				return false
			}
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	default:
		return false
	}
}

func (d *fastDecoder) literal(s string) bool {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

// number checks a JSON number's syntax.
func (d *fastDecoder) number() bool {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.b[d.i] == '-' {
		d.i++
	}
	start := d.i
	n := digits()
	if n == 0 || (n > 1 && d.b[start] == '0') {
		return false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
