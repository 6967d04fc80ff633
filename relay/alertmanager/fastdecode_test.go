package alertmanager

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// agrees fails unless decodeFast either gives up on body or builds exactly
// what encoding/json builds from it. It returns whether the fast path took
// it.
func agrees(t *testing.T, body []byte) bool {
	t.Helper()
	fast, ok := decodeFast(body)
	var std Message
	stdErr := json.Unmarshal(body, &std)
	if !ok {
		return false
	}
	if stdErr != nil {
		t.Fatalf("the fast decoder accepted what encoding/json refuses (%v):\n%q", stdErr, body)
	}
	if diff := cmp.Diff(&std, fast); diff != "" {
		t.Fatalf("the fast decoder differs from encoding/json (-encoding/json +fast):\n%s\nbody: %q", diff, body)
	}
	return true
}

// amBody is a notification as Alertmanager writes it: escaped quotes in the
// group key, newlines in annotations, "0001-01-01T00:00:00Z" for a firing
// alert's end.
const amBody = `{"receiver":"oncall","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"HighCPU","instance":"web-1:9100","severity":"critical"},"annotations":{"description":"Load above 90%\nfor 10 minutes: \"check\" the batch jobs \u00e9t\u00e9 \/ done","summary":"CPU hot — 東京 🙈"},"startsAt":"2026-11-27T03:04:05.123456789+01:00","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22node%22%7D","fingerprint":"1a2b3c4d5e6f7a8b"}],"groupLabels":{"alertname":"HighCPU"},"commonLabels":{"alertname":"HighCPU","severity":"critical"},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","version":"4","groupKey":"{}/{severity=\"critical\"}:{alertname=\"HighCPU\"}","truncatedAlerts":0}`

func TestDecodeFastTakesWhatAlertmanagerSends(t *testing.T) {
	t.Parallel()
	bodies := [][]byte{[]byte(amBody), []byte(" \n\t" + amBody + "\r\n ")}
	for _, m := range Samples() {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
		indented, _ := json.MarshalIndent(m, "", "  ")
		bodies = append(bodies, indented)
	}
	// Fields relay does not read, of every JSON type.
	bodies = append(bodies, []byte(strings.Replace(amBody, `"version":"4",`,
		`"version":"4","extra":{"a":[1,-2.5e3,true,false,null,{"b":"c\n"}],"d":{}},"n":0,`, 1)))
	for i, b := range bodies {
		if !agrees(t, b) {
			t.Errorf("body %d went the slow way:\n%s", i, b)
		}
	}
}

func TestDecodeFastLeavesTheRestToEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, body string }{
		{"duplicate field", `{"version":"4","version":"3"}`},
		{"duplicate labels", `{"alerts":[{"labels":{"a":"1"},"labels":{"b":"2"}}]}`},
		{"duplicate alerts", `{"alerts":[{"status":"firing"}],"alerts":[{}]}`},
		{"field in other case", `{"Version":"4"}`},
		{"field by Unicode folding", "{\"groupKe\u212a\":\"x\"}"},
		{"null string", `{"version":null}`},
		{"null label", `{"commonLabels":{"a":null}}`},
		{"null alerts", `{"alerts":null}`},
		{"number as string field", `{"version":4}`},
		{"string as int", `{"truncatedAlerts":"4"}`},
		{"fraction", `{"truncatedAlerts":1.0}`},
		{"exponent", `{"truncatedAlerts":1e2}`},
		{"overflow", `{"truncatedAlerts":99999999999999999999}`},
		{"surrogate pair", `{"receiver":"\ud83d\ude48"}`},
		{"lone surrogate", `{"receiver":"\ud800"}`},
		{"invalid UTF-8", "{\"receiver\":\"a\xffb\"}"},
		{"invalid UTF-8 label name", "{\"commonLabels\":{\"a\xff\":\"b\"}}"},
		{"escaped key", `{"vers\u0069on":"4"}`},
		{"control character", "{\"receiver\":\"a\tb\"}"},
		{"bad escape", `{"receiver":"a\qb"}`},
		{"short unicode escape", `{"receiver":"\u12"}`},
		{"escaped time", `{"alerts":[{"startsAt":"2026-11-27T03:04:05\u005a"}]}`},
		{"bad time", `{"alerts":[{"startsAt":"yesterday"}]}`},
		{"trailing data", `{"version":"4"} {}`},
		{"trailing comma", `{"version":"4",}`},
		{"array", `[]`},
		{"null", `null`},
		{"empty", ``},
		{"truncated", `{"version":"4"`},
		{"deep", `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`},
		{"leading zero", `{"x":01}`},
		{"bare minus", `{"x":-}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if agrees(t, []byte(tt.body)) {
				t.Errorf("the fast decoder took %q; it must leave it to encoding/json", tt.body)
			}
		})
	}
}

// FuzzDecodeFast checks on any input that the fast decoder either gives up
// or agrees with encoding/json.
func FuzzDecodeFast(f *testing.F) {
	f.Add([]byte(amBody))
	for _, m := range Samples() {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte(`{"alerts":[{"labels":{"a":"\u0000"}}],"truncatedAlerts":-0}`))
	f.Add([]byte(`{"x":[1,{"y":null}],"commonLabels":{"a":"1","a":"2"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		agrees(t, body)
	})
}

func BenchmarkDecodeFast(b *testing.B) {
	body := []byte(amBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := decodeFast(body); !ok {
			b.Fatal("slow way")
		}
	}
}

func BenchmarkDecodeEncodingJSON(b *testing.B) {
	body := []byte(amBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var m Message
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
	}
}
