package ingest

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestEventAudit: what the audit columns hold for each source, and that a
// sender's long value is cut on a character boundary to what an index
// entry takes.
func TestEventAudit(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		format             string
		labels             map[string]string
		name, status, kind string
	}{
		{FormatGitHub, map[string]string{"repository": "octo/app", "name": "CI", "conclusion": "failure", "status": "completed", "event": "workflow_run"},
			"octo/app CI", "failure", "workflow_run"},
		{FormatGitHub, map[string]string{"repository": "octo/app", "name": "CI", "status": "in_progress", "event": "check_suite"},
			"octo/app CI", "in_progress", "check_suite"},
		{FormatGitLab, map[string]string{"project": "g/p", "event": "pipeline", "status": "failed"}, "g/p pipeline", "failed", "pipeline"},
		{FormatGitLab, map[string]string{"project": "g/p", "event": "job", "job": "test", "status": "success"}, "g/p test", "success", "job"},
		{FormatGeneric, map[string]string{"title": "Backup failed", "status": "error"}, "Backup failed", "error", ""},
		{FormatGeneric, map[string]string{"alertname": "X", "title": "T", "receiver": "r"}, "X", "", "r"},
		{FormatGeneric, nil, "", "", ""},
		{FormatGeneric, map[string]string{"alertname": "Disk\x1b[2J\nFull\u202e"}, "Disk<U+001B>[2J<U+000A>Full<U+202E>", "", ""},
	} {
		name, status, kind := eventAudit(tt.format, tt.labels)
		if name != tt.name || status != tt.status || kind != tt.kind {
			t.Errorf("eventAudit(%s, %v) = %q, %q, %q; want %q, %q, %q", tt.format, tt.labels, name, status, kind, tt.name, tt.status, tt.kind)
		}
	}
	long := strings.Repeat("a", maxAuditValue-1) + "é" + "tail"
	got := auditValue(long)
	if len(got) > maxAuditValue || !utf8.ValidString(got) || got != strings.Repeat("a", maxAuditValue-1) {
		t.Errorf("auditValue cut %d bytes to %q (%d bytes)", len(long), got[len(got)-3:], len(got))
	}
}
