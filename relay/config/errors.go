package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/skype-relay/relay/relay"
)

// Problem is one thing wrong with the configuration. It matches
// relay.ErrInvalid with errors.Is.
type Problem struct {
	// Key is the key path (routes[0].format) or environment variable.
	Key string
	// Line is the line in the config file, 0 when unknown or not from the file.
	Line int
	// Msg says what is wrong; it never holds a secret.
	Msg string
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

// Unwrap lets errors.Is(err, relay.ErrInvalid) hold.
func (p *Problem) Unwrap() error { return relay.ErrInvalid }

// maxShown bounds the problems Problems.Error lists.
const maxShown = 50

// Problems is every problem found in one load, in file order where known.
// Its message has one problem per line (the first 50).
type Problems []*Problem

func (ps Problems) Error() string {
	if len(ps) == 1 {
		return ps[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(ps))
	for i, p := range ps {
		if i == maxShown {
			fmt.Fprintf(&b, "\n  ... and %d more", len(ps)-maxShown)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems, like errors.Join.
func (ps Problems) Unwrap() []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}

// Keys returns the key of each problem, handy in tests and UIs.
func (ps Problems) Keys() []string {
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = p.Key
	}
	return keys
}

// AsProblems returns the problems held by err, nil when it holds none.
func AsProblems(err error) Problems {
	var ps Problems
	if errors.As(err, &ps) {
		return ps
	}
	var p *Problem
	if errors.As(err, &p) {
		return Problems{p}
	}
	return nil
}

// collector gathers problems and knows the line of each key seen in the file.
type collector struct {
	problems Problems
	lines    map[string]int
	// bad holds keys whose value could not be decoded; validation stays
	// quiet about them (and their children) to avoid a second, confusing
	// problem for the same mistake.
	bad map[string]bool
	// envFor maps a key overridden by an environment variable to the
	// variable, so problems with the value name the variable.
	envFor map[string]string
}

func (c *collector) add(key string, line int, format string, args ...any) {
	c.problems = append(c.problems, &Problem{Key: key, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// addf records a problem at key, with the line where key (or, when the key
// is absent, its nearest enclosing key) was written.
func (c *collector) addf(key, format string, args ...any) {
	if env, ok := c.envFor[key]; ok {
		c.add(env, 0, format, args...)
		return
	}
	for k := key; k != ""; k = parentKey(k) {
		if c.bad[k] {
			return
		}
	}
	c.add(key, c.lineOf(key), format, args...)
}

func (c *collector) lineOf(key string) int {
	for ; key != ""; key = parentKey(key) {
		if line, ok := c.lines[key]; ok {
			return line
		}
	}
	return 0
}

// parentKey returns the enclosing key of key: "routes[0]" for
// "routes[0].name", "routes" for "routes[0]", "" at the top.
func parentKey(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}

// err returns the collected problems, nil when there are none.
func (c *collector) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	// File order first; problems without a line (environment) last.
	sort.SliceStable(c.problems, func(i, j int) bool {
		li, lj := c.problems[i].Line, c.problems[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	return c.problems
}
