// Package clean makes text from webhook senders safe to put into a chat
// message: what the recipient sees is what was sent, on the lines relay's
// template put it on.
//
// A sender controls labels, annotations, URLs, branch names, commit titles
// and every field of a generic payload. Left alone, a line feed in a label
// forges a line of its own ("api-1\n[RESOLVED:1] AllGood"), a right-to-left
// override (U+202E) reverses what follows, and terminal or other control
// characters reach the recipient's client. So every string taken from a
// request is cleaned by one of three functions before a template sees it:
//
//	Line  a value shown on one line: label names and values, names, titles,
//	      branches, statuses. Every character Forbidden reports, line feed
//	      and tab included, becomes a visible escape "<U+000A>".
//	Text  a value that may span lines: annotations such as description, a
//	      generic payload's strings. Line feeds and tabs stay, CR LF becomes
//	      LF; everything else Forbidden reports is escaped as in Line.
//	URL   a link: Line, after which anything but an http or https URL (or
//	      "") is replaced by RemovedLink.
//
// The escape is always "<U+" and four or more upper-case hex digits and
// ">", so it reads the same in every client and cannot itself act as a
// control. The functions never fail, return s itself when nothing needs
// cleaning (no allocation), and are idempotent.
package clean

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// RemovedLink replaces a URL that is not http or https, so the recipient
// sees that the sender gave a link relay did not pass on.
const RemovedLink = "<link removed: not http or https>"

// Forbidden reports whether r is never shown as itself. Line escapes all
// of them; Text keeps line feed and tab. They are:
//
//   - C0 controls U+0000 to U+001F (NUL, BEL, tab, line feed, carriage
//     return, ESC, ...), DEL U+007F and the C1 controls U+0080 to U+009F
//     (NEL U+0085 ends a line in some clients): they move the cursor, ring,
//     start terminal escape sequences or break lines;
//   - U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR, which break
//     lines as a line feed does;
//   - the bidirectional embeddings, overrides and isolates U+202A to U+202E
//     and U+2066 to U+2069, which reorder the text around them;
//   - the invisible direction marks U+200E (LRM), U+200F (RLM) and U+061C
//     (ALM): they cannot reverse letters but do move digits and
//     punctuation (an address, a version), and nothing shows they are
//     there; escaped, right-to-left text stays readable;
//   - U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER and U+FEFF (byte order
//     mark): invisible, with no use in an alert, and they make two values
//     that look the same differ ("prod" and "prod" followed by U+200B).
//
// The zero width joiner and non-joiner (U+200D, U+200C) are not: emoji
// sequences and several scripts need them, and they neither move text nor
// break lines.
func Forbidden(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	switch r {
	case 0x061c, 0x200b, 0x200e, 0x200f, 0x2028, 0x2029, 0x2060, 0xfeff:
		return true
	}
	return false
}

// Escape returns the visible form of r: "<U+202E>".
func Escape(r rune) string {
	return fmt.Sprintf("<U+%04X>", r)
}

// Line returns s cleaned for a value shown on one line: every character
// Forbidden reports, line feed and tab included, is escaped. Invalid UTF-8
// becomes U+FFFD.
func Line(s string) string { return cleanString(s, false) }

// Text returns s cleaned for a value that may span lines: line feeds and
// tabs stay, CR LF becomes LF, and every other character Forbidden reports
// (a carriage return on its own among them) is escaped. Invalid UTF-8
// becomes U+FFFD.
func Text(s string) string { return cleanString(s, true) }

// URL returns s cleaned as a link: surrounding white space is trimmed, the
// rest cleaned as by Line, and when the result does not start with
// "http://" or "https://" (in any case) it is replaced by RemovedLink. An
// empty s stays empty. A javascript:, data:, file: or sip: link, and a
// relative one, therefore never reaches a message as a link.
func URL(s string) string {
	s = Line(strings.TrimSpace(s))
	if s == "" || IsHTTP(s) {
		return s
	}
	return RemovedLink
}

// IsHTTP reports whether s starts with "http://" or "https://", in any
// case.
func IsHTTP(s string) bool {
	return hasPrefixFold(s, "http://") || hasPrefixFold(s, "https://")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// URLName reports whether a field or annotation called name holds a link
// by convention, and is cleaned with URL rather than Text: its name ends in
// "url" or "link", in any case (runbook_url, generatorURL, html_url, link).
func URLName(name string) bool {
	n := len(name)
	return n >= 3 && strings.EqualFold(name[n-3:], "url") ||
		n >= 4 && strings.EqualFold(name[n-4:], "link")
}

// cleanString is Line (multiline false) or Text (true).
func cleanString(s string, multiline bool) string {
	i := firstBad(s, multiline)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case multiline && (c == '\n' || c == '\t'):
				b.WriteByte(c)
			case multiline && c == '\r' && i+1 < len(s) && s[i+1] == '\n':
				// CR LF: the LF that follows is kept.
			case Forbidden(rune(c)):
				b.WriteString(Escape(rune(c)))
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case Forbidden(r):
			b.WriteString(Escape(r))
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// firstBad returns the offset of the first byte of s that cleaning
// changes, or -1.
func firstBad(s string, multiline bool) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(multiline && (c == '\n' || c == '\t')) {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || Forbidden(r) {
			return i
		}
		i += size
	}
	return -1
}
