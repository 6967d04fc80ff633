package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"

	"github.com/skype-relay/relay/relay/source"
)

//go:embed testdata/workflow_run_completed_failure.json testdata/check_suite_completed_success.json
var samples embed.FS

// Samples returns built-in deliveries of the events relay renders.
func Samples() []source.Sample {
	out := []source.Sample{}
	for _, s := range []struct{ file, event string }{
		{"testdata/workflow_run_completed_failure.json", "workflow_run"},
		{"testdata/check_suite_completed_success.json", "check_suite"},
	} {
		b, _ := samples.ReadFile(s.file) // embedded: cannot fail
		h := http.Header{}
		h.Set(HeaderEvent, s.event)
		h.Set(HeaderDelivery, "00000000-0000-4000-8000-000000000001")
		h.Set("Content-Type", "application/json")
		out = append(out, source.Sample{Name: s.event, Header: h, Body: b})
	}
	return out
}

// Sign sets the signature header GitHub would send for body with secret.
func Sign(h http.Header, body []byte, secret string) {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	h.Set(HeaderSignature, "sha256="+hex.EncodeToString(mac.Sum(nil)))
}
