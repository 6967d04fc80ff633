package config

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// applyEnv applies the environment's non-secret overrides.
func applyEnv(cfg *Config, getenv func(string) string, c *collector) {
	if v := getenv(EnvListenAddress); v != "" {
		cfg.ListenAddress = v
		// Problems with the address now belong to the variable, not the key.
		c.envFor["listen_address"] = EnvListenAddress
	}
	cfg.Database.URL = envSecret(EnvDatabaseURL, getenv, c)
}

// RouteTokenEnv returns the environment variable holding route name's bearer
// token: RELAY_ROUTE_<NAME>_TOKEN with NAME upper-cased and every character
// other than a letter or digit turned into '_'. Add "_FILE" for the variable
// naming a file that holds it.
func RouteTokenEnv(name string) string { return routeEnv(name, "_TOKEN") }

// RouteSecretEnv returns the environment variable holding route name's
// signing secret (github) or token (gitlab): RELAY_ROUTE_<NAME>_SECRET.
func RouteSecretEnv(name string) string { return routeEnv(name, "_SECRET") }

func routeEnv(name, suffix string) string {
	b := []byte(strings.ToUpper(name))
	for i, ch := range b {
		if (ch < 'A' || ch > 'Z') && (ch < '0' || ch > '9') {
			b[i] = '_'
		}
	}
	return "RELAY_ROUTE_" + string(b) + suffix
}

// resolveSecrets fills every Secret. For each, the environment variable
// wins, then its _FILE variant, then the file key. With skipFiles, secret
// files are not read: each such secret gets a random stand-in value and is
// listed in cfg.UnreadSecrets.
func resolveSecrets(cfg *Config, getenv func(string) string, c *collector, skipFiles bool) {
	sr := &secretReader{getenv: getenv, c: c, dir: cfg.Dir, skipFiles: skipFiles}
	cfg.API.BearerToken = sr.read(EnvAPIToken, "api.bearer_token_file", cfg.API.BearerTokenFile)
	cfg.UCWA.Password = sr.read(EnvUCWAPassword, "ucwa.password_file", cfg.UCWA.PasswordFile)
	cfg.Console.CookieKey = sr.read(EnvConsoleCookieKey, "console.cookie_key_file", cfg.Console.CookieKeyFile)
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if r.Name == "" {
			continue // reported by validate
		}
		key := fmt.Sprintf("routes[%d].bearer_token_file", i)
		r.BearerToken = sr.read(RouteTokenEnv(r.Name), key, r.BearerTokenFile)
		key = fmt.Sprintf("routes[%d].secret_file", i)
		r.Secret = sr.read(RouteSecretEnv(r.Name), key, r.SecretFile)
	}
	cfg.UnreadSecrets = sr.unread
}

// envSecret reads a secret given only through the environment: env itself or
// a file named by env_FILE. Such a file is always read.
func envSecret(env string, getenv func(string) string, c *collector) Secret {
	sr := &secretReader{getenv: getenv, c: c}
	return sr.read(env, "", "")
}

// secretReader resolves secrets from the environment and from files.
type secretReader struct {
	getenv func(string) string
	c      *collector
	// dir is what relative file keys resolve against.
	dir string
	// skipFiles leaves secret files unread (see UnreadSecrets).
	skipFiles bool
	unread    []string
}

// read resolves one secret from env, env_FILE or the file named by the
// config key.
func (sr *secretReader) read(env, key, file string) Secret {
	fileEnv := env + fileSuffix
	val, valFile := sr.getenv(env), sr.getenv(fileEnv)
	path, pathFrom := "", ""
	switch {
	case val != "" && valFile != "":
		sr.c.add(env, 0, "both %s and %s are set; set only one", env, fileEnv)
		return Secret{}
	case val != "":
		if err := checkSecret([]byte(val)); err != nil {
			sr.c.add(env, 0, "%v", err)
			return Secret{}
		}
		return Secret{value: val, source: "env " + env}
	case valFile != "":
		path, pathFrom = valFile, fileEnv
	case file != "":
		path, pathFrom = resolvePath(sr.dir, file), key
	default:
		return Secret{}
	}
	if sr.skipFiles && key != "" {
		sr.unread = append(sr.unread, pathFrom+" ("+path+")")
		return Secret{value: standIn(), source: "not read: file " + path}
	}
	s, err := readSecret(path)
	switch {
	case err != nil && pathFrom == fileEnv:
		sr.c.add(fileEnv, 0, "%v", err)
		return Secret{}
	case err != nil:
		sr.c.addf(key, "%v (or set %s or %s)", err, env, fileEnv)
		return Secret{}
	case pathFrom == fileEnv:
		s.source = "file " + path + " (" + fileEnv + ")"
	default:
		s.source = "file " + path
	}
	return s
}

// standIn returns a random value for a secret that was not read: a config
// loaded that way signs and checks its own samples, and no one can guess
// the value, should it ever be served (app.Run refuses such a config).
func standIn() string {
	return "unread-" + rand.Text()
}

// readSecret reads a secret file: at most MaxSecretFileSize bytes, one
// trailing newline trimmed, not empty. Errors name the file, never content.
func readSecret(path string) (Secret, error) {
	data, err := readLimited(path, MaxSecretFileSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Secret{}, fmt.Errorf("secret file %s does not exist", path)
		}
		return Secret{}, fmt.Errorf("read secret file: %w", err)
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) == 0 {
		return Secret{}, fmt.Errorf("secret file %s is empty", path)
	}
	if err := checkSecret(data); err != nil {
		return Secret{}, fmt.Errorf("secret file %s: %w", path, err)
	}
	return Secret{value: string(data)}, nil
}

// checkSecret rejects control characters: a secret ends up in an HTTP header
// or form, where a stray line break would corrupt the request.
func checkSecret(b []byte) error {
	for _, ch := range b {
		if ch < 0x20 || ch == 0x7f {
			return errors.New("contains a control character (a line break or tab?)")
		}
	}
	return nil
}
