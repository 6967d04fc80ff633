package ingest

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
)

// gzipped reports whether the request's body is gzip-compressed
// (Content-Encoding: gzip, or x-gzip, which RFC 9110 8.4.1.3 says to take
// as gzip). No encoding, or identity, is the body as it is; any other
// coding, or more than one, is answered 415 naming it, since relay would
// read it as garbage.
func gzipped(h http.Header) (bool, error) {
	var codings []string
	for _, v := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			if c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return false, nil
	case len(codings) == 1 && (codings[0] == "gzip" || codings[0] == "x-gzip"):
		return true, nil
	default:
		return false, newAPIError(http.StatusUnsupportedMediaType,
			"Content-Encoding %q is not supported: send the body as it is, or compressed with gzip",
			truncate(strings.Join(h.Values("Content-Encoding"), ", "), 64))
	}
}

// readGzipBody reads a gzip-compressed body and returns it decompressed.
// The limit applies to both: the compressed bytes read (a body larger than
// limit compressed cannot be one that fits), and above all the
// decompressed bytes, so that a few kilobytes that inflate to gigabytes
// cost at most limit bytes of memory and the time to inflate limit bytes.
// The body is decompressed into one buffer of limit+1 bytes, the most it
// may take (the in-flight reservation counts limit), rather than one grown
// by doubling.
func readGzipBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, err
	}
	buf := make([]byte, limit+1)
	n := 0
	for {
		k, err := zr.Read(buf[n:])
		n += k
		switch {
		case int64(n) > limit:
			return nil, newAPIError(http.StatusRequestEntityTooLarge,
				"body is larger than %d bytes once decompressed (Content-Encoding: gzip)", limit)
		case err == io.EOF:
			if n < len(buf)/2 {
				// Keep only what the body takes; the rest is garbage now.
				return append([]byte(nil), buf[:n]...), nil
			}
			return buf[:n], nil
		case err != nil:
			return nil, err
		}
	}
}
