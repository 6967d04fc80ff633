package gitlab

import (
	"embed"
	"net/http"

	"github.com/skype-relay/relay/relay/source"
)

//go:embed testdata/pipeline_failed.json testdata/job_failed.json
var samples embed.FS

// Samples returns built-in hooks of the events relay renders.
func Samples() []source.Sample {
	out := []source.Sample{}
	for _, s := range []struct{ file, event string }{
		{"testdata/pipeline_failed.json", "Pipeline Hook"},
		{"testdata/job_failed.json", "Job Hook"},
	} {
		b, _ := samples.ReadFile(s.file) // embedded: cannot fail
		h := http.Header{}
		h.Set(HeaderEvent, s.event)
		h.Set("Content-Type", "application/json")
		out = append(out, source.Sample{Name: s.event, Header: h, Body: b})
	}
	return out
}

// Sign sets the token header GitLab would send.
func Sign(h http.Header, token string) { h.Set(HeaderToken, token) }
