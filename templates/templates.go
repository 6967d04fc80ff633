// Package templates holds relay's default message templates. They live at
// the top of the module so operators can read them beside the code; the
// render package parses them once at start.
package templates

import "embed"

// FS holds every *.tmpl file of this directory.
//
//go:embed *.tmpl
var FS embed.FS
