package generic

import (
	"embed"
	"net/http"

	"github.com/skype-relay/relay/relay/source"
)

//go:embed testdata/deploy.json
var samples embed.FS

// Samples returns a built-in generic payload.
func Samples() []source.Sample {
	b, _ := samples.ReadFile("testdata/deploy.json") // embedded: cannot fail
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return []source.Sample{{Name: "deploy", Header: h, Body: b}}
}
