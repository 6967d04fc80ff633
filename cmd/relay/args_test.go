package main

import (
	"bytes"
	"flag"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitAction(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.String("url", "", "")
	fs.Bool("json", false, "")
	for _, tc := range []struct {
		args   []string
		action string
		rest   []string
		ok     bool
	}{
		{[]string{"list", "--json"}, "list", []string{"--json"}, true},
		{[]string{"--url", "http://x", "list", "--json"}, "list", []string{"--url", "http://x", "--json"}, true},
		{[]string{"--json", "show", "ID"}, "show", []string{"--json", "ID"}, true},
		{[]string{"--url=http://x", "show", "ID"}, "show", []string{"--url=http://x", "ID"}, true},
		{[]string{"-url", "list", "show"}, "show", []string{"-url", "list"}, true},
		{[]string{"--json=false", "list"}, "list", []string{"--json=false"}, true},
		{[]string{"--nope", "list"}, "list", []string{"--nope"}, true},
		{[]string{"--", "list"}, "list", []string{"--"}, true},
		{[]string{"--json"}, "", []string{"--json"}, false},
		{[]string{"--url", "list"}, "", []string{"--url", "list"}, false},
		{nil, "", nil, false},
	} {
		action, rest, ok := splitAction(fs.Lookup, tc.args)
		if action != tc.action || ok != tc.ok || !cmp.Equal(rest, tc.rest) {
			t.Errorf("splitAction(%q) = %q, %q, %v; want %q, %q, %v", tc.args, action, rest, ok, tc.action, tc.rest, tc.ok)
		}
	}
}

func TestParseArgsInterleaved(t *testing.T) {
	t.Parallel()
	var errOut bytes.Buffer
	fs := newFlagSet("test", "test", &errOut)
	j := fs.Bool("json", false, "")
	n := fs.Int("n", 0, "")
	pos, err := parseArgs(fs, []string{"a", "--json", "b", "-n", "3", "--", "--c"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "--c"}, pos); diff != "" || !*j || *n != 3 {
		t.Errorf("parseArgs: positional (-want +got):\n%s\njson=%v n=%d", diff, *j, *n)
	}
}
