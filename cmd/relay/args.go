package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseArgs parses flags that may come before, between or after the
// positional arguments, which it returns. "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err}
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// splitAction finds the action word of a command whose actions take
// different flags ("relay deliveries --url U list"): the first argument
// that is neither a flag nor a flag's value. lookup knows every flag of
// every action, so that "--url U" counts as two words and "--json" as one.
// An unknown flag counts as one word; parsing the rest reports it.
func splitAction(lookup func(name string) *flag.Flag, args []string) (action string, rest []string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return args[i+1], append(append([]string{}, args[:i+1]...), args[i+2:]...), true
			}
			return "", args, false
		case len(a) > 1 && a[0] == '-':
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if f := lookup(name); f != nil && !isBoolFlag(f) {
				i++ // the flag's value
			}
		default:
			return a, append(append([]string{}, args[:i]...), args[i+1:]...), true
		}
	}
	return "", args, false
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
