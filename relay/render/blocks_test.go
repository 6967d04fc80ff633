package render

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUnusedBlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "override of a shipped block",
			src:  `{{ define "alertmanager.time" }}{{ . | date "15:04" }}{{ end }}`,
		},
		{
			name: "misspelled override",
			src: `{{ define "alertmanager.tme" }}{{ . | date "15:04" }}{{ end }}
{{ define "alertmanager.title" }}{{ .Status }}{{ end }}`,
			want: []string{"alertmanager.tme"},
		},
		{
			name: "empty misspelled override",
			src:  `{{ define "alertmanager.link" }}{{ end }}`,
			want: []string{"alertmanager.link"},
		},
		{
			name: "helper the file's own body calls",
			src:  `{{ define "mine" }}{{ .Status }}{{ end }}{{ if .Alerts }}{{ range .Alerts }}{{ template "mine" $ }}{{ end }}{{ end }}`,
		},
		{
			name: "helper an override calls",
			src: `{{ define "alertmanager.title" }}{{ template "my.title" . }}{{ end }}
{{ define "my.title" }}{{ .Status }}{{ end }}`,
		},
		{
			name: "block keyword in the body",
			src:  `{{ block "mine" . }}{{ .Status }}{{ end }}`,
		},
		{
			name: "two helpers nobody calls",
			src:  `{{ define "b" }}b{{ end }}{{ define "a" }}a{{ end }}body`,
			want: []string{"a", "b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "custom.tmpl", tc.src)
			e := newTestEngine(t, Options{Files: map[string]string{"custom": path}})
			if diff := cmp.Diff(tc.want, e.UnusedBlocks("custom")); diff != "" {
				t.Errorf("UnusedBlocks(%q) (-want +got):\n%s", tc.src, diff)
			}
		})
	}
	e := newTestEngine(t, Options{})
	if got := e.UnusedBlocks("alertmanager"); got != nil {
		t.Errorf(`UnusedBlocks("alertmanager") = %q, want nil for a shipped template`, got)
	}
}

func TestShippedBlocks(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, Options{})
	am := e.ShippedBlocks("alertmanager")
	for _, want := range []string{"alertmanager.time", "alertmanager.title", "alertmanager.links"} {
		if !slices.Contains(am, want) {
			t.Errorf(`ShippedBlocks("alertmanager") = %q, want it to hold %q`, am, want)
		}
	}
	for _, b := range am {
		if b == "alertmanager" || !slices.IsSorted(am) {
			t.Fatalf(`ShippedBlocks("alertmanager") = %q, want sorted blocks without the entry point`, am)
		}
	}
	if all := e.ShippedBlocks(""); len(all) <= len(am) {
		t.Errorf(`ShippedBlocks("") has %d blocks, want more than alertmanager's %d`, len(all), len(am))
	}
}
