package generic

import (
	"slices"

	"github.com/skype-relay/relay/relay/clean"
)

// Clean returns the copy of d that templates see. The payload has no
// schema, so relay cannot tell a one-line field from a text: keys are
// cleaned as one line (clean.Line), string values as text (clean.Text,
// keeping line feeds and tabs), except under a key that names a link
// (clean.URLName: url, link, html_url, ...), cleaned with clean.URL.
// Numbers, booleans and null stay. Route, from the configuration, is kept.
// On the copy, Fields prints every value on one line, and Raw returns d.
func (d *Data) Clean() any {
	c := *d
	c.raw = d
	if d.Payload != nil {
		c.Payload, _ = cleanObject(d.Payload)
	}
	return &c
}

// Raw returns the data as the sender sent it: for a copy made by Clean the
// original, else d. The template function raw calls it.
func (d *Data) Raw() any {
	if d.raw != nil {
		return d.raw
	}
	return d
}

// cleanValue cleans v, found under key, and reports whether anything
// changed; unchanged objects and arrays are returned as they are.
func cleanValue(key string, v any) (any, bool) {
	switch v := v.(type) {
	case string:
		c := clean.Text(v)
		if clean.URLName(key) {
			c = clean.URL(v)
		}
		return c, c != v
	case map[string]any:
		return cleanObject(v)
	case []any:
		var out []any
		for i, x := range v {
			c, changed := cleanValue(key, x)
			if changed && out == nil {
				out = slices.Clone(v)
			}
			if out != nil {
				out[i] = c
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	default:
		return v, false
	}
}

// cleanObject cleans keys as one line and values with cleanValue. Should
// two keys clean to the same one, the key the sender wrote that way wins,
// else the first in sorted order, so the result does not depend on map
// order.
func cleanObject(obj map[string]any) (map[string]any, bool) {
	changed := map[string]any{} // clean keys whose values changed
	var renamed []string        // keys that change themselves
	for k, v := range obj {
		if clean.Line(k) != k {
			renamed = append(renamed, k)
		} else if c, ok := cleanValue(k, v); ok {
			changed[k] = c
		}
	}
	if len(changed) == 0 && len(renamed) == 0 {
		return obj, false
	}
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		if c, ok := changed[k]; ok {
			out[k] = c
		} else if clean.Line(k) == k {
			out[k] = v
		}
	}
	slices.Sort(renamed)
	for _, k := range renamed {
		ck := clean.Line(k)
		if _, taken := out[ck]; !taken {
			out[ck], _ = cleanValue(k, obj[k])
		}
	}
	return out, true
}
