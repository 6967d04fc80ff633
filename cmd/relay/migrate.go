package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/store"
)

const migrateActions = "up, version, force N or down"

// migrate runs "relay migrate up|version|force N|down".
func migrate(args []string, stdout, stderr io.Writer) error {
	pos, path, err := flags("migrate", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{errors.New("want one of: " + migrateActions)}
	}
	action, want := pos[0], 1
	force := -1
	switch action {
	case "up", "down", "version":
	case "force":
		want = 2
		if len(pos) == 2 {
			n, err := strconv.Atoi(pos[1])
			if err != nil || n < 0 {
				return usageError{fmt.Errorf("force: want the version the schema is really at (a number), got %q", pos[1])}
			}
			force = n
		}
	default:
		return usageError{fmt.Errorf("unknown migrate action %q: want %s", action, migrateActions)}
	}
	if len(pos) != want {
		if action == "force" && len(pos) == 1 {
			return usageError{errors.New("force: want the version the schema is really at, e.g. relay migrate force 2")}
		}
		return usageError{fmt.Errorf("unexpected argument %q", pos[want])}
	}
	// The schema needs only the database; a config file is read when given
	// so that a deploy job can share the relay's. Its secrets are not
	// needed, so they are not read.
	url := os.Getenv(config.EnvDatabaseURL)
	if path != "" || os.Getenv(config.EnvConfig) != "" {
		cfg, err := config.LoadWith(path, os.Getenv, config.LoadOptions{SkipSecrets: true})
		if err != nil {
			return err
		}
		url = cfg.DatabaseURL()
	}
	if url == "" {
		return usageError{errors.New("DATABASE_URL is not set")}
	}
	return app.Migrate(url, func(m *store.Migrator) error {
		switch action {
		case "up":
			if err := m.Up(); err != nil {
				return err
			}
		case "down":
			if err := m.Down(); err != nil {
				return err
			}
		case "force":
			if err := m.Force(force); err != nil {
				return err
			}
		}
		return printVersion(stdout, m)
	})
}

func printVersion(w io.Writer, m *store.Migrator) error {
	v, dirty, ok, err := m.Version()
	if err != nil {
		return err
	}
	latest, err := store.LatestVersion()
	if err != nil {
		return err
	}
	switch {
	case !ok:
		fmt.Fprintf(w, "version: none (empty database); this relay's latest: %d\n", latest)
	case dirty:
		fmt.Fprintf(w, "version: %d (dirty: a migration failed half way); this relay's latest: %d\n", v, latest)
	default:
		fmt.Fprintf(w, "version: %d; this relay's latest: %d\n", v, latest)
	}
	return nil
}
