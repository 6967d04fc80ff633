package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// Load reads the config file at path (or, when path is "", the file named by
// env RELAY_CONFIG) and returns the validated configuration. getenv supplies
// the environment (os.Getenv in main; a map lookup in tests; nil means an
// empty environment). Relative paths in the file resolve against the file's
// directory. A configuration error is a Problems listing every problem.
func Load(path string, getenv func(string) string) (*Config, error) {
	return LoadWith(path, getenv, LoadOptions{})
}

// LoadOptions adjust LoadWith and ParseWith.
type LoadOptions struct {
	// SkipSecrets leaves the secret files the config or the environment
	// names unread (the API token, the UCWA password, route tokens and
	// secrets; DATABASE_URL_FILE is still read). Each such secret gets a
	// random stand-in value and is listed in Config.UnreadSecrets. For
	// commands that send nothing: check-config, render, migrate, and the
	// API clients, which read the one file they need themselves.
	SkipSecrets bool
}

// LoadWith is Load with options.
func LoadWith(path string, getenv func(string) string, opts LoadOptions) (*Config, error) {
	getenv = orEmpty(getenv)
	if path == "" {
		path = getenv(EnvConfig)
	}
	if path == "" {
		return nil, fmt.Errorf("load config: no config file: pass --config FILE or set %s", EnvConfig)
	}
	data, err := readLimited(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	cfg, err := ParseWith(data, filepath.Dir(abs), getenv, opts)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse parses and validates a config file's contents. dir is the directory
// relative paths (secret files, template files, ca_file) resolve against.
// getenv is as for Load.
func Parse(data []byte, dir string, getenv func(string) string) (*Config, error) {
	return ParseWith(data, dir, getenv, LoadOptions{})
}

// ParseWith is Parse with options.
func ParseWith(data []byte, dir string, getenv func(string) string, opts LoadOptions) (*Config, error) {
	getenv = orEmpty(getenv)
	if len(data) > MaxFileSize {
		return nil, &Problem{Msg: fmt.Sprintf("config is %d bytes, more than the limit of %d", len(data), MaxFileSize)}
	}
	root, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	c := &collector{lines: map[string]int{}, bad: map[string]bool{}, envFor: map[string]string{}}
	cfg := defaults()
	cfg.Dir = dir
	d := &decoder{c: c}
	d.decode("", root, reflect.ValueOf(cfg).Elem())
	if d.tooComplex() {
		return nil, c.err() // validating a half-decoded config only adds noise
	}

	applyEnv(cfg, getenv, c)
	resolveSecrets(cfg, getenv, c, opts.SkipSecrets)
	cfg.validate(c)
	if err := c.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseDocument parses exactly one YAML document and returns its root node.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Problem{Msg: "config is empty"}
		}
		return nil, &Problem{Msg: "invalid YAML: " + trimYAMLPrefix(err.Error())}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, &Problem{Msg: "invalid YAML: " + trimYAMLPrefix(err.Error())}
	default:
		return nil, &Problem{Line: next.Line, Msg: "more than one YAML document (remove the second '---')"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Problem{Msg: "config is empty"}
	}
	return doc.Content[0], nil
}

func trimYAMLPrefix(s string) string {
	const p = "yaml: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// readLimited reads a regular file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	// Stat before opening: opening a FIFO for reading would block.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err // *PathError already names the path
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than the limit of %d bytes", path, limit)
	}
	return data, nil
}

func orEmpty(getenv func(string) string) func(string) string {
	if getenv == nil {
		return func(string) string { return "" }
	}
	return getenv
}

// resolvePath makes a path from the file absolute against dir.
func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}
