package render

import (
	"fmt"
)

// RenderValue executes the template name on data of any type, such as the
// Data of a relay/source decoder (a *github.Data for "github"), and returns
// the text. Data with a Clean method, as every decoder's has, is rendered
// through the copy Clean returns, so the template sees sender text
// cleaned. It applies the same functions, output limit and tidying as
// Render, and likewise not MaxBytes. A failing template or an output beyond
// MaxOutputBytes gives an error wrapping relay.ErrInvalid.
func (e *Engine) RenderValue(name string, data any) (string, error) {
	ent, ok := e.entries[name]
	if !ok {
		return "", fmt.Errorf("render template %q: %w", name, ErrUnknownTemplate)
	}
	switch c := data.(type) {
	case *Data:
		data = c.cleaned()
	case cleaner:
		data = c.Clean()
	}
	return ent.execute(name, data)
}

// cleaner is template data that has a cleaned view of itself: the Data of
// every relay/source decoder. Clean returns a copy with every string from
// the sender cleaned (relay/clean), on which Raw returns the original.
type cleaner interface {
	Clean() any
}

// RenderValueParts renders like RenderValue and returns the text as one or
// more chat messages of at most MaxBytes bytes each. A longer text is cut
// at line breaks, else at spaces, else at a character boundary, and the
// parts are numbered "(1/3) " as RenderParts numbers them. At most MaxParts
// are returned; when the text needs more, the last one ends with
// "[message cut: too long]", so nothing goes missing unannounced.
func (e *Engine) RenderValueParts(name string, data any) ([]string, error) {
	full, err := e.RenderValue(name, data)
	if err != nil {
		return nil, err
	}
	if len(full) <= e.maxBytes {
		return []string{full}, nil
	}
	pieces := splitText(full, e.maxBytes-partReserve(e.maxParts)-noteReserve)
	if len(pieces) > e.maxParts {
		pieces = pieces[:e.maxParts]
		pieces[e.maxParts-1] += "\n[message cut: too long]"
	}
	if len(pieces) == 1 {
		return pieces, nil
	}
	parts := make([]string, len(pieces))
	for k, p := range pieces {
		parts[k] = fmt.Sprintf("(%d/%d) %s", k+1, len(pieces), p)
	}
	return parts, nil
}
