package source

import "net/http"

// Sample is a built-in webhook request of a source, for check-config and
// `relay render`: headers (without any signature or token; see Sign) and
// body.
type Sample struct {
	Name   string
	Header http.Header
	Body   []byte
}
