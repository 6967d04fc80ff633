package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/templates"
)

// Limits.
const (
	// DefaultMaxBytes is the default size cap of one chat message in bytes
	// of UTF-8 (PROTOCOL.md §6.5).
	DefaultMaxBytes = 8 << 10
	// MinMaxBytes is the smallest MaxBytes accepted: a part must hold its
	// number and a "+N more" note with room to spare.
	MinMaxBytes = 256
	// DefaultMaxParts is the default number of messages one notification
	// may be split into.
	DefaultMaxParts = 10
	// MaxOutputBytes caps what one template execution may write; beyond it
	// rendering stops with an error, so a hostile template or payload cannot
	// exhaust memory.
	MaxOutputBytes = 1 << 20
	// maxFileBytes caps the size of a template file.
	maxFileBytes = 1 << 20
)

// ErrUnknownTemplate is returned for a template name the engine was not
// given. It is a configuration mistake, not bad input.
var ErrUnknownTemplate = errors.New("unknown template")

// ErrTooLarge is wrapped (with relay.ErrInvalid) when a template writes more
// than MaxOutputBytes.
var ErrTooLarge = errors.New("rendered output too large")

// Options configure an Engine. The zero value serves the shipped templates
// with default limits.
type Options struct {
	// Files maps template names, as routes refer to them, to template file
	// paths. A name may be the path itself. See the package documentation
	// for how a file combines with the shipped templates.
	Files map[string]string
	// MaxBytes caps each message RenderParts returns, in bytes of UTF-8
	// (default DefaultMaxBytes, at least MinMaxBytes).
	MaxBytes int
	// MaxParts caps how many messages RenderParts returns (default
	// DefaultMaxParts). What does not fit is summarised as "+N more".
	MaxParts int
}

// Engine renders notifications with parsed templates. It is safe for
// concurrent use; nothing in it changes after New.
type Engine struct {
	entries  map[string]entry
	maxBytes int
	maxParts int
	// shipped is the set of shipped templates, for UnusedBlocks.
	shipped *template.Template
}

// entry is one name an Engine renders: a template set and the template of
// that set to execute.
type entry struct {
	set  *template.Template
	exec string
	// usesConversation: the set mentions .Conversation (see UsesConversation).
	usesConversation bool
	// native, when set, writes what executing the template on a *Data
	// writes, without the interpreter (see writeAlertmanager).
	native func(*bytes.Buffer, *Data) error
	// file is the template file's path; "" for a shipped template.
	file string
}

// New parses the shipped templates and every file of opts.Files. Errors name
// the template and, for syntax errors, the file and line.
func New(opts Options) (*Engine, error) {
	return newEngine(templates.FS, opts, time.Now)
}

// newEngine is New with the shipped templates and the clock as parameters,
// for tests.
func newEngine(shipped fs.FS, opts Options, now func() time.Time) (*Engine, error) {
	e := &Engine{
		entries:  make(map[string]entry),
		maxBytes: opts.MaxBytes,
		maxParts: opts.MaxParts,
	}
	if e.maxBytes == 0 {
		e.maxBytes = DefaultMaxBytes
	}
	if e.maxBytes < MinMaxBytes {
		return nil, fmt.Errorf("render options: MaxBytes is %d, at least %d needed", e.maxBytes, MinMaxBytes)
	}
	if e.maxParts == 0 {
		e.maxParts = DefaultMaxParts
	}
	if e.maxParts < 1 {
		return nil, fmt.Errorf("render options: MaxParts is %d, at least 1 needed", e.maxParts)
	}

	base, err := template.New("").Funcs(funcMap(now)).Option("missingkey=error").ParseFS(shipped, "*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse shipped templates: %w", err)
	}
	e.shipped = base
	// The generic template reads a payload nobody declared: a key a
	// sender left out must read as empty, not fail the request with 422.
	// text/template keeps options per set, not per template, so the
	// generic entry runs in a clone of its own; the other shipped
	// templates stay strict, and a typo in them fails loudly.
	lenient, err := base.Clone()
	if err != nil {
		return nil, fmt.Errorf("clone shipped templates: %w", err)
	}
	lenient.Option("missingkey=zero")
	// Entry points are the defined templates whose names hold no dot; the
	// dotted ones ("alertmanager.alert") are their overridable blocks, and
	// the file names ("alertmanager.tmpl") have empty bodies.
	for _, t := range base.Templates() {
		if !strings.Contains(t.Name(), ".") && t.Name() != "" {
			set := base
			if t.Name() == genericEntry {
				set = lenient
			}
			e.entries[t.Name()] = entry{set: set, exec: t.Name(), usesConversation: mentionsConversation(set)}
		}
	}
	// The shipped alertmanager template, as shipped, has a native
	// rendering; tests that bring other shipped templates do not get it.
	if shipped == templates.FS {
		if ent, ok := e.entries[alertmanagerEntry]; ok {
			ent.native = writeAlertmanager
			e.entries[alertmanagerEntry] = ent
		}
	}

	for _, name := range slices.Sorted(maps.Keys(opts.Files)) {
		path := opts.Files[name]
		if _, ok := e.entries[name]; ok {
			return nil, fmt.Errorf("load template %q: the name is taken by a shipped template", name)
		}
		ent, err := parseFile(base, path)
		if err != nil {
			return nil, fmt.Errorf("load template %q: %w", name, err)
		}
		ent.usesConversation = mentionsConversation(ent.set)
		e.entries[name] = ent
	}
	return e, nil
}

// parseFile parses the template file at path into a clone of the shipped
// set, so its define'd blocks override the shipped ones for this file only.
// A file with a body of its own renders that body; a file of only defines
// renders the shipped "alertmanager" template with those overrides.
func parseFile(base *template.Template, path string) (entry, error) {
	src, err := readFile(path)
	if err != nil {
		return entry{}, err
	}
	set, err := base.Clone()
	if err != nil {
		return entry{}, fmt.Errorf("clone shipped templates: %w", err)
	}
	// Alertmanager renders a missing label as ""; user templates keep that
	// so one absent label cannot make a notification undeliverable.
	set.Option("missingkey=zero")
	// Naming the template after the path puts the path into every syntax
	// error: "template: /etc/relay/oncall.tmpl:3: ...".
	t, err := set.New(path).Parse(src)
	if err != nil {
		return entry{}, err
	}
	if t.Tree == nil || parse.IsEmptyTree(t.Tree.Root) {
		return entry{set: set, exec: overridden(base, set), file: path}, nil
	}
	return entry{set: set, exec: path, file: path}, nil
}

// alertmanagerEntry is the shipped template for Alertmanager notifications.
const alertmanagerEntry = "alertmanager"

// genericEntry is the shipped template for arbitrary JSON payloads.
const genericEntry = "generic"

// overridden picks the shipped entry point a file of only defines
// customises: the one whose blocks ("github.title" belongs to "github")
// the file redefines, when they all belong to one; else "alertmanager".
func overridden(base, set *template.Template) string {
	entry := ""
	for _, t := range set.Templates() {
		b := base.Lookup(t.Name())
		if b == nil || b.Tree == t.Tree {
			continue // the file's own template, or not redefined
		}
		name, _, _ := strings.Cut(t.Name(), ".")
		if entry != "" && entry != name {
			return "alertmanager"
		}
		entry = name
	}
	if entry == "" || base.Lookup(entry) == nil {
		return "alertmanager"
	}
	return entry
}

func readFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxFileBytes)
	}
	return string(b), nil
}

// Has reports whether name is a template the engine can render.
func (e *Engine) Has(name string) bool {
	_, ok := e.entries[name]
	return ok
}

// Names returns the names the engine can render, sorted.
func (e *Engine) Names() []string {
	return slices.Sorted(maps.Keys(e.entries))
}

// UsesConversation reports whether the template name may render
// differently per conversation (it mentions .Conversation anywhere in its
// template set). When it does not, a caller may render once and send the
// text to every conversation. Unknown names report true.
func (e *Engine) UsesConversation(name string) bool {
	ent, ok := e.entries[name]
	return !ok || ent.usesConversation
}

// mentionsConversation looks through every template of set for the field
// .Conversation. It errs on the side of true: any mention counts.
func mentionsConversation(set *template.Template) bool {
	for _, t := range set.Templates() {
		if t.Tree != nil && t.Tree.Root != nil && strings.Contains(t.Tree.Root.String(), "Conversation") {
			return true
		}
	}
	return false
}

// MaxBytes returns the size cap of one message that RenderParts applies.
func (e *Engine) MaxBytes() int { return e.maxBytes }

// Render executes the template name on d and returns the text, with
// trailing spaces and runs of blank lines removed. The template sees d
// with the sender's text cleaned (relay/clean; see the package
// documentation), and the original through the function raw. It does not apply
// MaxBytes; RenderParts does. A failing template or an output beyond
// MaxOutputBytes gives an error wrapping relay.ErrInvalid.
func (e *Engine) Render(name string, d Data) (string, error) {
	ent, ok := e.entries[name]
	if !ok {
		return "", fmt.Errorf("render template %q: %w", name, ErrUnknownTemplate)
	}
	return ent.render(name, &d)
}

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render renders d, cleaned (see Data.cleaned), with the native writer
// when the entry has one, else the template.
func (ent entry) render(name string, d *Data) (string, error) {
	d = d.cleaned()
	if ent.native != nil {
		return ent.output(name, func(buf *bytes.Buffer) error {
			if err := ent.native(buf, d); err != nil {
				return err
			}
			if buf.Len() > MaxOutputBytes {
				return ErrTooLarge
			}
			return nil
		})
	}
	return ent.execute(name, d)
}

// execute runs the entry on data with the output limit and tidies the
// text.
func (ent entry) execute(name string, data any) (string, error) {
	return ent.output(name, func(buf *bytes.Buffer) error {
		return ent.set.ExecuteTemplate(&limitedWriter{buf: buf, max: MaxOutputBytes}, ent.exec, data)
	})
}

// output runs write into a pooled buffer and returns the tidied text.
func (ent entry) output(name string, write func(*bytes.Buffer) error) (string, error) {
	buf := buffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 { // let big buffers go
			buf.Reset()
			buffers.Put(buf)
		}
	}()
	buf.Reset()
	if err := write(buf); err != nil {
		return "", ent.execError(name, err)
	}
	out := buf.Bytes()
	if !utf8.Valid(out) {
		// The payload is valid UTF-8, but a template can still cut a
		// character in two (slice, printf "%c"); chat servers need valid
		// text.
		out = bytes.ToValidUTF8(out, []byte("\uFFFD"))
	}
	return tidy(out), nil
}

// execError wraps a template execution error with the template name.
// text/template already names the file and line of the failing action
// ("template: /etc/relay/oncall.tmpl:3:5: executing ..."), as the set's
// trees carry the name of the file they were parsed from.
func (ent entry) execError(name string, err error) error {
	if errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("render template %q: %w: %w (limit %d bytes)", name, relay.ErrInvalid, err, MaxOutputBytes)
	}
	return fmt.Errorf("render template %q: %w: %w", name, relay.ErrInvalid, err)
}

// limitedWriter writes into buf until max bytes, then fails every write.
type limitedWriter struct {
	buf *bytes.Buffer
	max int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, ErrTooLarge
	}
	return w.buf.Write(p)
}

// tidy drops trailing blanks of every line, leading blank lines, and
// trailing whitespace, and shortens runs of blank lines to one, so what
// templates produce looks tidy without whitespace-trimming markers
// everywhere.
func tidy(b []byte) string {
	var out strings.Builder
	out.Grow(len(b))
	blank := 0 // blank lines seen since the last text line
	wrote := false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimRight(line, " \t\r")
		if len(line) == 0 {
			blank++
			continue
		}
		if wrote {
			out.WriteByte('\n')
			if blank > 0 {
				out.WriteByte('\n')
			}
		}
		out.Write(line)
		wrote = true
		blank = 0
	}
	return out.String()
}
