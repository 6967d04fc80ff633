package ucwasim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// statusWriter remembers the status written, for the request log, and
// counts it (Stats.Requests) before any byte reaches the client, so a test
// that got the answer also sees the count.
type statusWriter struct {
	http.ResponseWriter
	status  int
	reset   bool
	swallow bool           // the answer is discarded and the connection reset
	count   func(code int) // called once: the status, 0 for reset, -1 for none
	counted bool
	// retry notes a Retry-After answer for retryKey before it is written,
	// so a client that saw it is checked against it; not when the client
	// is known to have given up on the request (ctx ended).
	retry    *retryAfters
	retryKey retryKey
	ctx      context.Context
	pad      int // Fault.PadBody: bytes of padding written after the answer
}

func (w *statusWriter) countOnce(code int) {
	if w.counted || w.count == nil {
		return
	}
	w.counted = true
	w.count(code)
}

// WriteHeader records and counts the status, then writes it.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if w.pad > 0 {
			w.Header().Del("Content-Length") // the padding follows
		}
		if !w.swallow {
			w.countOnce(code)
			if v := w.Header().Get("Retry-After"); v != "" && w.retry != nil && w.ctx.Err() == nil {
				w.retry.note(w.retryKey, v)
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write writes body bytes (status 200 when none was written).
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// writePad writes the padding of a PadBody fault after the answer.
func (w *statusWriter) writePad() {
	if w.pad <= 0 || w.status == 0 || w.reset || w.swallow {
		return
	}
	chunk := []byte(strings.Repeat(" ", 32<<10))
	for left := w.pad; left > 0; left -= len(chunk) {
		if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
			return
		}
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush sends what was written so far.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// resetConn drops the TCP connection with a RST and no answer.
func (w *statusWriter) resetConn() { w.resetConnAfter("") }

// resetConnAfter writes partial (a truncated response) and then drops the
// TCP connection with a RST. Go's transport transparently retries an
// idempotent request whose reused connection died before any byte came
// back; the partial bytes make the drop visible to the client.
func (w *statusWriter) resetConnAfter(partial string) {
	w.reset = true
	w.countOnce(0)
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if partial != "" {
		_, _ = conn.Write([]byte(partial))
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// ucwaError is the UCWA error body (PROTOCOL §8.1).
type ucwaError struct {
	Code    string `json:"code"`
	Subcode string `json:"subcode,omitempty"`
	Message string `json:"message,omitempty"`
}

var codeForStatus = map[int]string{
	400: "BadRequest", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
	408: "ClientTimeout", 409: "Conflict", 410: "Gone", 412: "PreconditionFailed",
	413: "EntityTooLarge", 415: "UnsupportedMediaType", 428: "PreconditionRequired",
	429: "TooManyRequests", 500: "ServiceFailure", 502: "BadGateway", 503: "ServiceUnavailable",
	504: "Timeout",
}

// writeError answers a UCWA JSON error with the diagnostic headers.
func (p *pool) writeError(w http.ResponseWriter, status int, code, subcode, msg string) {
	if code == "" {
		code = codeForStatus[status]
		if code == "" {
			code = http.StatusText(status)
		}
	}
	if msg == "" {
		msg = defaultErrorMessage(code, subcode)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	p.diagHeaders(h, status, subcode)
	b, _ := json.Marshal(ucwaError{Code: code, Subcode: subcode, Message: msg})
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (p *pool) diagHeaders(h http.Header, status int, reason string) {
	h.Set("X-MS-Server-Fqdn", p.fqdn)
	if reason == "" {
		reason = http.StatusText(status)
	}
	h.Set("X-Ms-diagnostics", fmt.Sprintf(`%d;reason="%s";source="%s"`, 28000+status, reason, p.fqdn))
}

// writeProxyError answers like a proxy: HTML (or empty) body, no UCWA JSON.
func writeProxyError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><h1>%s</h1></body></html>",
		status, http.StatusText(status), http.StatusText(status))
}

func defaultErrorMessage(code, subcode string) string {
	switch subcode {
	case "ApplicationNotFound":
		return "The application resource does not exist."
	case "CannotRedirect":
		return "The user's pool cannot redirect the request."
	case "PGetReplaced":
		return "The pending GET was replaced by a newer one."
	case "ParameterValidationFailure":
		return "A parameter failed validation."
	}
	if subcode != "" {
		return code + ": " + subcode
	}
	return code
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// readBody reads at most limit bytes; larger bodies are an error.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

var errTooLarge = errors.New("body too large")

// mediaType returns the lowercased media type of the request, "" if none.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	return strings.ToLower(mt)
}

// randID returns an opaque random-looking id of n base-36 characters.
func randID(n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[mrand.IntN(len(alphabet))]
	}
	return string(b)
}

// randToken returns a fresh cwt token value.
func randToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "cwt=" + base64.RawURLEncoding.EncodeToString(b[:])
}

func itoa(n int) string { return strconv.Itoa(n) }

// date is a time in the ASP.NET AJAX JSON form "\/Date(ms)\/".
type date time.Time

// MarshalJSON writes "\/Date(ms)\/".
func (d date) MarshalJSON() ([]byte, error) {
	return []byte(`"\/Date(` + strconv.FormatInt(time.Time(d).UnixMilli(), 10) + `)\/"`), nil
}

// sleepCtx waits d, or less when ctx ends or the simulator closes.
func (s *Sim) sleep(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-s.closing:
	}
}
