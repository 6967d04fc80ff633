package render

import (
	"slices"
	"strings"
	"text/template/parse"
)

// UnusedBlocks returns the blocks the template file of name defines that
// change nothing: they are not shipped blocks, so they override nothing,
// and nothing in the file calls them. A misspelled override
// ("alertmanager.tme") is the usual cause. Sorted; nil for a shipped
// template or an unknown name.
func (e *Engine) UnusedBlocks(name string) []string {
	ent, ok := e.entries[name]
	if !ok || ent.file == "" {
		return nil
	}
	called := map[string]bool{}
	for _, t := range ent.set.Templates() {
		if t.Tree != nil {
			calledTemplates(t.Tree.Root, called)
		}
	}
	var unused []string
	for _, t := range ent.set.Templates() {
		n := t.Name()
		if n == ent.file || e.shipped.Lookup(n) != nil || called[n] {
			continue
		}
		unused = append(unused, n)
	}
	slices.Sort(unused)
	return unused
}

// ShippedBlocks returns the blocks of the shipped template named from that
// a file may override ("alertmanager" gives "alertmanager.alert", ...),
// sorted; every shipped block when from is "".
func (e *Engine) ShippedBlocks(from string) []string {
	var out []string
	for _, t := range e.shipped.Templates() {
		n := t.Name()
		if strings.HasSuffix(n, ".tmpl") || !strings.Contains(n, ".") {
			continue // a file's own (empty) body, or an entry point
		}
		if from == "" || strings.HasPrefix(n, from+".") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// calledTemplates adds the name of every {{ template }} call under n.
func calledTemplates(n parse.Node, called map[string]bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			calledTemplates(c, called)
		}
	case *parse.TemplateNode:
		called[n.Name] = true
	case *parse.IfNode:
		calledTemplates(n.List, called)
		calledTemplates(n.ElseList, called)
	case *parse.RangeNode:
		calledTemplates(n.List, called)
		calledTemplates(n.ElseList, called)
	case *parse.WithNode:
		calledTemplates(n.List, called)
		calledTemplates(n.ElseList, called)
	}
}
