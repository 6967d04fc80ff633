package generic

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/clean"
	"github.com/skype-relay/relay/relay/source"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	t.Parallel()
	body := fixture(t, "deploy.json")
	ev, err := Decode(http.Header{}, body)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	d := ev.Data.(*Data)
	if d.Payload["title"] != "Deploy finished" || d.Payload["duration_seconds"] != json.Number("93.5") {
		t.Errorf("Payload = %v, want the object with numbers as json.Number", d.Payload)
	}
	if ev.Kind != "generic" || ev.Ignored || ev.Ping || !strings.HasPrefix(ev.IdempotencyKey, "generic/sha256:") {
		t.Errorf("Decode = %+v, want a generic event keyed by content", ev)
	}
	wantLabels := map[string]string{
		"source": "generic", "title": "Deploy finished", "status": "success", "service": "payments-api",
		"version": "2026.11.27-3", "duration_seconds": "93.5", "url": "https://deploy.example.com/runs/8812", "canary": "false",
	}
	if diff := cmp.Diff(wantLabels, ev.Labels); diff != "" {
		t.Errorf("Labels mismatch (-want +got):\n%s", diff)
	}
	wantFields := []Field{
		{"canary", "false"},
		{"details", `{"hosts":["pay-1","pay-2"],"region":"eu-west-1"}`},
		{"duration_seconds", "93.5"},
		{"note", "null"},
		{"service", "payments-api"},
		{"status", "success"},
		{"title", "Deploy finished"},
		{"url", "https://deploy.example.com/runs/8812"},
		{"version", "2026.11.27-3"},
	}
	if diff := cmp.Diff(wantFields, d.Fields(0)); diff != "" {
		t.Errorf("Fields mismatch (-want +got):\n%s", diff)
	}
	if got := d.Fields(12)[1].Value; got != `{"hosts":…` {
		t.Errorf("Fields(12) details = %q, want it cut to 12 bytes", got)
	}
	ev.SetRoute("deploys")
	if d.Route != "deploys" {
		t.Error("SetRoute did not set Data.Route")
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	key := func(t *testing.T, h http.Header, body string) string {
		t.Helper()
		ev, err := Decode(h, []byte(body))
		if err != nil {
			t.Fatalf("Decode(%s): %v", body, err)
		}
		return ev.IdempotencyKey
	}
	a := key(t, http.Header{}, `{"a":1,"b":{"c":"x","d":[1,2]}}`)
	b := key(t, http.Header{}, "{ \"b\" : {\"d\":[1, 2], \"c\":\"x\"},\n \"a\" : 1 }")
	if a != b {
		t.Errorf("same object, other key order and spacing: %q and %q, want equal", a, b)
	}
	if c := key(t, http.Header{}, `{"a":2,"b":{"c":"x","d":[1,2]}}`); c == a {
		t.Error("different objects gave the same key")
	}
	h := http.Header{}
	h.Set(HeaderIdempotencyKey, "order-4711/attempt")
	if got := key(t, h, `{"a":1}`); got != "generic/order-4711/attempt" {
		t.Errorf("key with header = %q, want generic/order-4711/attempt", got)
	}
	// The header wins: another body under the same key dedupes.
	if got := key(t, h, `{"a":2}`); got != "generic/order-4711/attempt" {
		t.Errorf("key with header, other body = %q, want the header's", got)
	}
	for name, v := range map[string]string{
		"empty":     "",
		"too long":  strings.Repeat("k", 256),
		"control":   "a\tb",
		"non-ascii": "schlüssel",
		"del char":  "a\x7f",
	} {
		h := http.Header{HeaderIdempotencyKey: []string{v}}
		_, err := Decode(h, []byte(`{"a":1}`))
		if !errors.Is(err, source.ErrMalformed) || !strings.Contains(err.Error(), "Idempotency-Key") {
			t.Errorf("Decode with %s Idempotency-Key: error = %v, want ErrMalformed naming the header", name, err)
		}
	}
	if got := key(t, http.Header{HeaderIdempotencyKey: []string{strings.Repeat("k", 255)}}, `{}`); got != "generic/"+strings.Repeat("k", 255) {
		t.Errorf("255-byte key rejected or changed: %q", got)
	}
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat(`{"a":`, MaxDepth+2) + "1" + strings.Repeat("}", MaxDepth+2)
	many := `{"a":[` + strings.Repeat("1,", MaxValues) + `1]}`
	tests := []struct {
		name, body, msg string
	}{
		{"empty", ``, "empty body"},
		{"array", `[1,2]`, "JSON array, want an object"},
		{"string", `"hi"`, "JSON string, want an object"},
		{"number", `42`, "JSON number, want an object"},
		{"null", `null`, "JSON null, want an object"},
		{"bool", `true`, "JSON boolean, want an object"},
		{"truncated", `{"a":`, "truncated JSON"},
		{"syntax", `{"a" 1}`, "invalid JSON at byte"},
		{"trailing", `{} {}`, "unexpected data after"},
		{"escaped NUL in value", `{"a":"x\u0000y"}`, "payload.a contains a NUL"},
		{"escaped NUL in key", `{"a\u0000":1}`, "a key in payload contains a NUL"},
		{"nested NUL", `{"a":{"b":["ok","\u0000"]}}`, "payload.a.b[1] contains a NUL"},
		{"invalid UTF-8", "{\"a\":\"\xc3\x28\"}", "not valid UTF-8"},
		{"raw NUL", "{\"a\":\"\x00\"}", "invalid JSON"},
		{"too deep", deep, "nests deeper than"},
		{"too many values", many, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(http.Header{}, []byte(tt.body))
			if !errors.Is(err, source.ErrMalformed) || !errors.Is(err, relay.ErrInvalid) {
				t.Fatalf("Decode error = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Decode error = %q, want it to contain %q", err, tt.msg)
			}
		})
	}
	big := []byte(`{"a":"` + strings.Repeat("x", source.MaxBodyBytes) + `"}`)
	if _, err := Decode(http.Header{}, big); !errors.Is(err, source.ErrMalformed) {
		t.Errorf("Decode(huge) error = %v, want ErrMalformed", err)
	}
}

func TestLabelsLimits(t *testing.T) {
	t.Parallel()
	obj := map[string]any{"source": "spoofed", "long": strings.Repeat("x", MaxLabelBytes+1), "obj": map[string]any{}}
	for i := range MaxLabels + 10 {
		obj[strings.Repeat("k", 1+i%3)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	l := labels(obj)
	if l["source"] != "generic" {
		t.Errorf(`labels["source"] = %q, want "generic"`, l["source"])
	}
	if _, ok := l["long"]; ok {
		t.Error("an over-long value became a label")
	}
	if _, ok := l["obj"]; ok {
		t.Error("an object became a label")
	}
	if len(l) > MaxLabels+1 {
		t.Errorf("%d labels, want at most %d", len(l), MaxLabels+1)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(fixture(f, "deploy.json"), "")
	f.Add([]byte(`{"a":"\u0000"}`), "k")
	f.Add([]byte(`[1]`), "")
	f.Add([]byte(`{"a":{"b":[1,2,{"c":null}]}}`), "key-1")
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		h := http.Header{}
		if key != "" {
			h.Set(HeaderIdempotencyKey, key)
		}
		ev, err := Decode(h, body)
		if err != nil {
			if ev != nil || !errors.Is(err, source.ErrMalformed) {
				t.Fatalf("Decode = %+v, %v; want nil and ErrMalformed", ev, err)
			}
			return
		}
		if ev.IdempotencyKey == "" || ev.Data.(*Data).Payload == nil {
			t.Fatalf("Decode = %+v: want a key and a payload", ev)
		}
		// Decoding is deterministic: the same request gives the same key.
		again, err := Decode(h, body)
		if err != nil || again.IdempotencyKey != ev.IdempotencyKey {
			t.Fatalf("second Decode = %v, %v; want key %q", again, err, ev.IdempotencyKey)
		}
		// What templates see keeps line feeds and tabs in strings, and
		// nothing else that cleaning escapes; every field it lists is
		// one line.
		c := ev.Data.(*Data).Clean().(*Data)
		if s := fmt.Sprint(c.Payload); strings.IndexFunc(s, forbiddenInText) >= 0 {
			t.Fatalf("Clean() of %s left %q", body, s)
		}
		for _, f := range c.Fields(0) {
			if s := f.Name + f.Value; strings.IndexFunc(s, clean.Forbidden) >= 0 {
				t.Fatalf("Fields() of the cleaned %s hold %q", body, s)
			}
		}
	})
}

func forbiddenInText(r rune) bool { return clean.Forbidden(r) && r != '\n' && r != '\t' }
