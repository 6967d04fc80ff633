package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The file is parsed into a yaml.Node tree and then walked against the
// Config types by hand rather than with Decoder.KnownFields(true): the walk
// gives the same strictness (unknown keys are errors) but names the full key
// path and line of each problem, and carries on after one so every problem is
// reported at once.

// maxNodes bounds the nodes visited, so aliases cannot expand a small file
// into a huge walk ("billion laughs").
const maxNodes = 100_000

var durationType = reflect.TypeFor[time.Duration]()
var recipientsType = reflect.TypeFor[Recipients]()

// secretHints answer the keys people try for values that must not be in
// the file.
var secretHints = map[reflect.Type]map[string]string{
	reflect.TypeFor[Database](): {
		"url": "the database URL comes from env " + EnvDatabaseURL + " (or " + EnvDatabaseURLFile + ")",
	},
	reflect.TypeFor[API](): {
		"bearer_token": "put the token in a file named by bearer_token_file, or set env " + EnvAPIToken,
	},
	reflect.TypeFor[UCWA](): {
		"password": "put the password in a file named by password_file, or set env " + EnvUCWAPassword,
	},
	reflect.TypeFor[Route](): {
		"bearer_token": "put the token in a file named by bearer_token_file, or set env RELAY_ROUTE_<NAME>_TOKEN",
	},
}

// defaulter is implemented by list and map element types that have defaults.
type defaulter interface{ setDefaults() }

type decoder struct {
	c       *collector
	visited int
}

// fail records a decode problem at key and marks the key bad.
func (d *decoder) fail(key string, line int, format string, args ...any) {
	d.c.bad[key] = true
	d.c.add(key, line, format, args...)
}

// tooComplex reports whether the node budget ran out.
func (d *decoder) tooComplex() bool { return d.visited > maxNodes }

// decode stores n into v, reporting problems under path.
func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	if path != "" {
		d.c.lines[path] = n.Line // where the value is used, even via an alias
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.fail(path, n.Line, "unresolved alias")
			return
		}
		n = n.Alias
	}
	d.visited++
	if d.visited > maxNodes {
		if d.visited == maxNodes+1 {
			d.fail(path, n.Line, "document too complex (more than %d nodes after alias expansion)", maxNodes)
		}
		return
	}
	// A null value ("key:" or "key: ~") leaves the default in place.
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}

	t := v.Type()
	switch {
	case t == durationType:
		s, ok := d.scalar(path, n, "a duration such as 30s or 5m")
		if !ok {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(path, n.Line, "want a duration such as 30s or 5m, got %s", quote(s))
			return
		}
		v.SetInt(int64(dur))
	case t == recipientsType && n.Kind == yaml.ScalarNode:
		// One recipient may be written without a list.
		v.Set(reflect.ValueOf(Recipients{n.Value}))
	case t.Kind() == reflect.String:
		s, ok := d.scalar(path, n, "a string")
		if ok {
			v.SetString(s)
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		s, ok := d.scalar(path, n, "an integer")
		if !ok {
			return
		}
		var i int64
		if n.Tag != "!!int" || n.Decode(&i) != nil {
			d.fail(path, n.Line, "want an integer, got %s", quote(s))
			return
		}
		if v.OverflowInt(i) {
			d.fail(path, n.Line, "integer %s out of range", s)
			return
		}
		v.SetInt(i)
	case t.Kind() == reflect.Bool:
		s, ok := d.scalar(path, n, "true or false")
		if !ok {
			return
		}
		var b bool
		if n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.fail(path, n.Line, "want true or false, got %s", quote(s))
			return
		}
		v.SetBool(b)
	case t.Kind() == reflect.Slice:
		d.slice(path, n, v)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		d.mapping(path, n, v)
	case t.Kind() == reflect.Struct:
		d.structure(path, n, v)
	default:
		// Only reachable if a field of an unsupported type gets a yaml tag.
		panic(fmt.Sprintf("config: cannot decode into %s", t))
	}
}

// scalar returns n's value when n is a scalar, else reports a problem.
func (d *decoder) scalar(path string, n *yaml.Node, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, "want %s, got %s", want, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) slice(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n.Line, "want a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		elem := s.Index(i)
		setDefaults(elem)
		d.decode(fmt.Sprintf("%s[%d]", path, i), item, elem)
	}
	v.Set(s)
}

func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "want a mapping, got %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.key(path, k, first)
		if !ok {
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		setDefaults(elem)
		if f := elem.FieldByName("Name"); elem.Kind() == reflect.Struct && f.IsValid() && f.Kind() == reflect.String {
			f.SetString(key)
		}
		d.decode(join(path, key), val, elem)
		m.SetMapIndex(reflect.ValueOf(key), elem)
	}
	v.Set(m)
}

func (d *decoder) structure(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "want a mapping, got %s", kindName(n))
		return
	}
	fields := yamlFields(v.Type())
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.key(path, k, first)
		if !ok {
			continue
		}
		idx, known := fields[key]
		if !known {
			if hint, ok := secretHints[v.Type()][key]; ok {
				d.fail(join(path, key), k.Line, "unknown key: %s", hint)
			} else if guess := closest(key, fields); guess != "" {
				d.fail(join(path, key), k.Line, "unknown key (did you mean %s?)", guess)
			} else {
				d.fail(join(path, key), k.Line, "unknown key")
			}
			continue
		}
		d.decode(join(path, key), val, v.Field(idx))
	}
}

// key checks a mapping key: a plain scalar, not a merge key, not repeated.
func (d *decoder) key(path string, k *yaml.Node, first map[string]int) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		d.fail(path, k.Line, "mapping keys must be plain strings, got %s", kindName(k))
		return "", false
	}
	if k.Tag == "!!merge" {
		d.fail(join(path, "<<"), k.Line, "merge keys are not supported")
		return "", false
	}
	if line, dup := first[k.Value]; dup {
		d.fail(join(path, k.Value), k.Line, "duplicate key (first set on line %d)", line)
		return "", false
	}
	first[k.Value] = k.Line
	return k.Value, true
}

// yamlFields maps each yaml key of struct type t to its field index.
func yamlFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
	}
	return fields
}

func setDefaults(v reflect.Value) {
	if d, ok := v.Addr().Interface().(defaulter); ok {
		d.setDefaults()
	}
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// join appends key to path, quoting keys that would make the path ambiguous.
func join(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	default:
		return "the value " + quote(n.Value)
	}
}

// quote quotes a value from the file for an error message, shortened so a
// pasted blob cannot flood the log.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// closest returns the known key nearest to key when it is a likely typo
// (edit distance at most 2), else "".
func closest(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for name := range fields {
		if dist := editDistance(key, name); dist < bestDist || dist == bestDist && name < best {
			best, bestDist = name, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30 // not a typo; keep the work bounded
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
