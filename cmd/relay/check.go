package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/config"
)

// checkConfig runs "relay check-config": load the configuration and run
// every route on the built-in samples. Secret files are read only with
// --secrets: the command sends nothing, and where it runs (a laptop, CI)
// the production secrets usually are not.
func checkConfig(args []string, stdout, stderr io.Writer) error {
	var secrets bool
	pos, path, err := flags("check-config", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&secrets, "secrets", false, "also read the secret files (tokens, password) and check them")
	})
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	cfg, err := loadConfigWith(path, secrets)
	if err != nil {
		return err
	}
	warnings, err := app.Check(cfg)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "config OK: routes %d, conversations %d\n", len(cfg.Routes), len(cfg.Conversations))
	printUnread(stdout, cfg)
	return nil
}

// loadConfigWith loads the configuration, reading its secret files only
// when secrets is set.
func loadConfigWith(path string, secrets bool) (*config.Config, error) {
	if path == "" && os.Getenv(config.EnvConfig) == "" {
		return nil, usageError{errNoConfig}
	}
	return config.LoadWith(path, os.Getenv, config.LoadOptions{SkipSecrets: !secrets})
}

// printUnread says which secret files were not read.
func printUnread(w io.Writer, cfg *config.Config) {
	if len(cfg.UnreadSecrets) == 0 {
		return
	}
	fmt.Fprintln(w, "not checked (secret files are read only with --secrets):")
	for _, s := range cfg.UnreadSecrets {
		fmt.Fprintf(w, "  %s\n", s)
	}
}
