// Package generic decodes webhook requests carrying any JSON object, for
// senders relay has no dedicated decoder for.
//
// The template sees the object as .Payload (a map[string]any; numbers are
// json.Number, so they print exactly as sent) and the route as .Route,
// with every string cleaned (see Data.Clean).
// Nothing is authenticated here: protect generic routes by network policy
// or by a secret path.
//
// # Idempotency
//
// The key is the Idempotency-Key header when present (1 to 255 bytes of
// printable ASCII, else 400), otherwise the SHA-256 of the canonical
// object: keys sorted, insignificant white space dropped, numbers and
// strings as sent. Two requests with the same object therefore dedupe,
// however they were formatted; a sender that posts the same object twice
// on purpose must send distinct Idempotency-Key headers.
//
// # Labels
//
// For routing rules, the labels are the object's top-level strings,
// numbers and booleans (up to MaxLabels of them, each value up to
// MaxLabelBytes), plus source="generic". A field named "source" in the
// payload does not override it.
package generic

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/source"
)

// HeaderIdempotencyKey is the request header a sender may set to identify
// a delivery across its retries.
const HeaderIdempotencyKey = "Idempotency-Key"

// Limits on a payload, beyond source.MaxBodyBytes.
const (
	// MaxDepth caps how deeply objects and arrays nest.
	MaxDepth = 32
	// MaxValues caps the number of values (objects, arrays, scalars).
	MaxValues = 20_000
	// MaxLabels caps the routing labels taken from top-level fields.
	MaxLabels = 64
	// MaxLabelBytes caps a top-level value used as a label.
	MaxLabelBytes = 1 << 10
)

// Data is what the generic template sees as dot.
type Data struct {
	// Payload is the request's JSON object. A missing key reads as nothing
	// in the shipped template; guard nested lookups with "with".
	Payload map[string]any
	// Route is the relay route the request came in on (see SetRoute).
	Route string

	// raw is the Data a copy made by Clean was made from.
	raw *Data
}

// SetRoute sets the route name templates read as .Route.
func (d *Data) SetRoute(name string) { d.Route = name }

// Field is one top-level field of the payload, printed for a message.
type Field struct {
	Name  string
	Value string
}

// Fields returns the payload's top-level fields sorted by name, each value
// printed as text: strings as they are, numbers as sent, objects and
// arrays as compact JSON, null as "null". A value is cut at max bytes
// (with "…"); max <= 0 means 200. On the copy templates see (Clean), each
// value is printed on one line (clean.Line), as "name: value" lines need.
func (d *Data) Fields(max int) []Field {
	if max <= 0 {
		max = 200
	}
	names := make([]string, 0, len(d.Payload))
	for k := range d.Payload {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]Field, len(names))
	for i, n := range names {
		v := text(d.Payload[n])
		if d.raw != nil {
			v = clean.Line(v)
		}
		out[i] = Field{Name: n, Value: cut(v, max)}
	}
	return out
}

// text prints a decoded JSON value.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	case nil:
		return "null"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}

// cut shortens s to at most max bytes at a character boundary.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max - len("…")
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Decode decodes one request: any JSON object. Arrays, scalars, invalid
// UTF-8, NUL characters (escaped or not) anywhere in keys or strings, and
// payloads beyond the limits give errors wrapping source.ErrMalformed.
func Decode(h http.Header, body []byte) (*source.Event, error) {
	if err := source.CheckBody(body); err != nil {
		return nil, fmt.Errorf("decode generic webhook: %w", err)
	}
	var v any
	if err := source.DecodeJSON(body, &v); err != nil {
		return nil, fmt.Errorf("decode generic webhook: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decode generic webhook: %w: the body is JSON %s, want an object", source.ErrMalformed, kind(v))
	}
	count := 0
	if err := check("payload", obj, 0, &count); err != nil {
		return nil, fmt.Errorf("decode generic webhook: %w", err)
	}
	key, err := idempotencyKey(h, obj)
	if err != nil {
		return nil, fmt.Errorf("decode generic webhook: %w", err)
	}
	d := &Data{Payload: obj}
	return &source.Event{
		Kind:           "generic",
		IdempotencyKey: key,
		Data:           d,
		Labels:         labels(obj),
		Summary:        fmt.Sprintf("generic object with %d fields", len(obj)),
	}, nil
}

// check walks v for NUL characters and the depth and size limits, naming
// the path of the offending value.
func check(path string, v any, depth int, count *int) error {
	*count++
	if *count > MaxValues {
		return fmt.Errorf("%w: more than %d values", source.ErrMalformed, MaxValues)
	}
	if depth > MaxDepth {
		return fmt.Errorf("%w: %s nests deeper than %d levels", source.ErrMalformed, path, MaxDepth)
	}
	switch v := v.(type) {
	case string:
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%w: %s contains a NUL character", source.ErrMalformed, path)
		}
	case map[string]any:
		for k, x := range v {
			if strings.IndexByte(k, 0) >= 0 {
				return fmt.Errorf("%w: a key in %s contains a NUL character", source.ErrMalformed, path)
			}
			if err := check(path+"."+cut(k, 64), x, depth+1, count); err != nil {
				return err
			}
		}
	case []any:
		for i, x := range v {
			if err := check(fmt.Sprintf("%s[%d]", path, i), x, depth+1, count); err != nil {
				return err
			}
		}
	}
	return nil
}

func kind(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	default:
		return "object"
	}
}

// idempotencyKey is the sender's Idempotency-Key, else a hash of the
// canonical object.
func idempotencyKey(h http.Header, obj map[string]any) (string, error) {
	if vs := h.Values(HeaderIdempotencyKey); len(vs) > 0 {
		if err := source.CheckKey(HeaderIdempotencyKey, vs[0]); err != nil {
			return "", err
		}
		return "generic/" + vs[0], nil
	}
	// encoding/json writes map keys sorted and json.Number as sent, which
	// makes this the canonical form.
	canon, err := json.Marshal(obj)
	if err != nil {
		return "", fmt.Errorf("%w: canonicalise body: %w", source.ErrMalformed, err)
	}
	return "generic/" + source.HashKey(canon), nil
}

// labels takes the object's top-level scalars as routing labels.
func labels(obj map[string]any) map[string]string {
	out := map[string]string{}
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if len(out) == MaxLabels {
			break
		}
		if k == "source" || k == "" {
			continue
		}
		switch v := obj[k].(type) {
		case string, json.Number, bool:
			if s := text(v); len(s) <= MaxLabelBytes {
				out[k] = s
			}
		}
	}
	out["source"] = "generic"
	return out
}
