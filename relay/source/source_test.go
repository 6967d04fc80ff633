package source

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/skype-relay/relay/relay"
)

func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{nil, http.StatusOK},
		{fmt.Errorf("decode: %w: bad signature", ErrUnauthorized), http.StatusUnauthorized},
		{fmt.Errorf("decode: %w: no body", ErrMalformed), http.StatusBadRequest},
		{relay.ErrInvalid, http.StatusBadRequest},
		{errors.New("boom"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		if got := HTTPStatus(tt.err); got != tt.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if errors.Is(ErrUnauthorized, relay.ErrInvalid) {
		t.Error("ErrUnauthorized wraps relay.ErrInvalid; it must map to 401, not 400")
	}
	if !errors.Is(ErrMalformed, relay.ErrInvalid) {
		t.Error("ErrMalformed does not wrap relay.ErrInvalid")
	}
}

func TestCheckKey(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "with space ~!", strings.Repeat("k", MaxKeyBytes)} {
		if err := CheckKey("X-Key", ok); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("k", MaxKeyBytes+1), "tab\there", "nul\x00", "ü"} {
		err := CheckKey("X-Key", bad)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "X-Key") {
			t.Errorf("CheckKey(%q) = %v, want ErrMalformed naming the header", bad, err)
		}
	}
}

type event struct{ Route string }

func (e *event) SetRoute(name string) { e.Route = name }

func TestEventSetRoute(t *testing.T) {
	t.Parallel()
	d := &event{}
	(&Event{Data: d}).SetRoute("r1")
	if d.Route != "r1" {
		t.Errorf("SetRoute: Route = %q, want r1", d.Route)
	}
	(&Event{}).SetRoute("no data") // must not panic
}

func TestFirstLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"Fix bug\n\nLong text", 80, "Fix bug"},
		{"  spaced \r\nx", 80, "spaced"},
		{"Störung im Zahlungsverkehr", 8, "Störung…"},
		{"", 5, ""},
	}
	for _, tt := range tests {
		if got := FirstLine(tt.in, tt.n); got != tt.want {
			t.Errorf("FirstLine(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	var v struct {
		N int `json:"n"`
	}
	if err := DecodeJSON([]byte(`{"n":3}`), &v); err != nil || v.N != 3 {
		t.Errorf("DecodeJSON = %v, n=%d; want nil, 3", err, v.N)
	}
	for body, msg := range map[string]string{
		`{"n":"x"}`:    `field "n"`,
		`{"n":1} 2`:    "unexpected data after",
		"{\"n\":\xff}": "not valid UTF-8 (first bad byte at offset 5)",
		``:             "empty body",
	} {
		err := DecodeJSON([]byte(body), &v)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), msg) {
			t.Errorf("DecodeJSON(%q) = %v, want ErrMalformed with %q", body, err, msg)
		}
	}
}
