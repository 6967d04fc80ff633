package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"
)

// DecodeJSON decodes one JSON value from body into v and rejects trailing
// data. Errors wrap ErrMalformed and name the offending field or byte
// offset.
func DecodeJSON(body []byte, v any) error {
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD; JSON
	// must be UTF-8 (RFC 8259), so say so instead.
	if !utf8.Valid(body) {
		return fmt.Errorf("%w: body is not valid UTF-8 (first bad byte at offset %d)", ErrMalformed, invalidAt(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s", ErrMalformed, DescribeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: unexpected data after the JSON value", ErrMalformed)
	}
	return nil
}

// DescribeJSONError says in a sentence fit for a webhook sender what is
// wrong with a JSON body, from encoding/json's error.
func DescribeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn) && strings.Contains(syn.Error(), "unexpected end of JSON input"):
		return "truncated JSON"
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		}
		if k := typ.Type.Kind(); k == reflect.Struct || k == reflect.Map {
			return "expected a JSON object, got JSON " + typ.Value
		}
		return fmt.Sprintf("expected %s, got JSON %s", typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return "empty body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	default:
		return err.Error()
	}
}

// MaxFieldBytes caps one string field decoders take from a payload.
const MaxFieldBytes = 16 << 10

// CheckString rejects what cannot be stored or shown in field: NUL
// characters (PostgreSQL text cannot hold them), invalid UTF-8 and more
// than MaxFieldBytes. Errors wrap ErrMalformed.
func CheckString(field, s string) error {
	switch {
	case len(s) > MaxFieldBytes:
		return fmt.Errorf("%w: %s is %d bytes long, at most %d accepted", ErrMalformed, field, len(s), MaxFieldBytes)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s contains a NUL character", ErrMalformed, field)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, field)
	}
	return nil
}

// CheckStrings runs CheckString on name/value pairs: field1, value1,
// field2, value2, ...
func CheckStrings(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := CheckString(pairs[i], pairs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// FirstLine returns the first line of s, at most n runes, for titles taken
// from commit messages.
func FirstLine(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// invalidAt returns the offset of the first byte of b that is not valid
// UTF-8.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}
