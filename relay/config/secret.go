package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// redacted is what every printed form of a set Secret shows.
const redacted = "[REDACTED]"

// Secret holds a password or token read at load time. Every way of printing
// it (fmt verbs, String, JSON, YAML, slog) shows "[REDACTED]", or "" when it
// is unset; only Reveal returns the value. The value lives in an unexported
// field so reflection-free printers cannot reach it.
type Secret struct {
	value  string
	source string
}

// NewSecret returns a Secret holding value, for tests and callers that build
// a Config by hand. Its source reads "literal".
func NewSecret(value string) Secret {
	if value == "" {
		return Secret{}
	}
	return Secret{value: value, source: "literal"}
}

// Reveal returns the secret value. Call it only where the value is used
// (an Authorization header, a token request), never to log it.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret has a value.
func (s Secret) IsSet() bool { return s.value != "" }

// Source says where the value came from, e.g. "env RELAY_UCWA_PASSWORD" or
// "file /run/secrets/ucwa_password"; "" when unset. It is safe to log.
func (s Secret) Source() string { return s.source }

// String returns "[REDACTED]" when set and "" otherwise.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format prints the redacted form for every verb, so %x or %q cannot leak
// the value either.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = fmt.Fprint(f, s.GoString())
		return
	}
	if verb == 'q' {
		_, _ = fmt.Fprintf(f, "%q", s.String())
		return
	}
	_, _ = fmt.Fprint(f, s.String())
}

// LogValue implements slog.LogValuer with the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText encodes the redacted form (used by encoders that prefer text).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML encodes the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }
