// Command relay carries alerts from Alertmanager and CI systems into Skype
// for Business conversations.
//
//	relay serve        [--config FILE] [--no-migrate] [--web.config.file FILE]
//	relay migrate      up|down|version [--config FILE]
//	relay check-config [--config FILE]
//	relay render       --route R [--payload FILE | --delivery ID]
//	relay deliveries   list|show|redeliver
//
// The configuration file comes from --config or RELAY_CONFIG; the database
// from DATABASE_URL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only when RELAY_DEBUG_PPROF_ADDRESS is set
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
	_ "time/tzdata" // templates may format times in any zone; images may lack zoneinfo

	"github.com/skype-relay/relay/relay/app"
	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/store"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if os.Getenv("GOGC") == "" {
		// relay's live heap is small and its garbage is per request: trading
		// a few tens of MB for a quarter of the GC work pays on a busy
		// ingest. GOGC in the environment still wins.
		debug.SetGCPercent(400)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `relay carries alerts into Skype for Business conversations.

Usage:
  relay serve        [--config FILE] [--no-migrate] [--web.config.file FILE]
                                                     run the relay (web config: TLS, basic auth)
  relay migrate      up|down|version [--config FILE]  manage the database schema
  relay check-config [--config FILE]                  load the config and render every route's template
  relay render       --route R [--payload FILE | --delivery ID] [--header 'K: V']...
                                                     print exactly what a webhook would send
  relay deliveries   list|show|redeliver [flags]      inspect deliveries and redeliver them (audit API client)
  relay version                                       print the version

The config file comes from --config or RELAY_CONFIG, the database from DATABASE_URL.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stderr)
	case "migrate":
		err = migrate(args, stdout, stderr)
	case "check-config":
		err = checkConfig(args, stdout, stderr)
	case "render":
		err = renderCmd(args, stdout, stderr)
	case "deliveries":
		err = deliveries(args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "relay", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "relay: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "relay %s: %v\n", cmd, err)
		return 2
	default:
		fmt.Fprintf(stderr, "relay %s: %v\n", cmd, err)
		return 1
	}
}

type usageError struct{ error }

// flags parses the options every subcommand shares, plus extra ones.
func flags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*flag.FlagSet, string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (default: $RELAY_CONFIG)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", usageError{err}
	}
	return fs, *path, nil
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" && os.Getenv(config.EnvConfig) == "" {
		return nil, usageError{errors.New("no configuration: pass --config FILE or set RELAY_CONFIG")}
	}
	return config.Load(path, os.Getenv)
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(args []string, stderr io.Writer) error {
	var noMigrate bool
	var webConfig string
	fs, path, err := flags("serve", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&noMigrate, "no-migrate", false, "do not apply pending migrations at start")
		fs.StringVar(&webConfig, "web.config.file", "", "Prometheus web configuration file: TLS and basic auth for the listener")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	app.SetVersion(version)
	logger := newLogger(cfg, stderr).With(slog.String("version", version))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if addr := os.Getenv("RELAY_DEBUG_PPROF_ADDRESS"); addr != "" {
		// Go's profiler, for diagnosing performance; off unless asked for.
		go func() {
			logger.Info("pprof listening", slog.String("address", addr))
			srv := &http.Server{Addr: addr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
			logger.Warn("pprof stopped", slog.Any("err", srv.ListenAndServe()))
		}()
	}
	// SIGHUP reloads the configuration file (as POST /-/reload does).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloads := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reloads <- struct{}{}:
			default:
			}
		}
	}()
	return app.Run(ctx, cfg, logger, app.Options{
		SkipMigrate:    noMigrate,
		Reload:         func() (*config.Config, error) { return config.Load(path, os.Getenv) },
		ReloadRequests: reloads,
		WebConfigFile:  webConfig,
	})
}

func migrate(args []string, stdout, stderr io.Writer) error {
	fs, path, err := flags("migrate", args, stderr, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("want one of: up, down, version")}
	}
	// The schema needs only the database; a config file is read when given
	// so that a deploy job can share the relay's.
	url := os.Getenv(config.EnvDatabaseURL)
	if path != "" || os.Getenv(config.EnvConfig) != "" {
		cfg, err := config.Load(path, os.Getenv)
		if err != nil {
			return err
		}
		url = cfg.DatabaseURL()
	}
	if url == "" {
		return usageError{errors.New("DATABASE_URL is not set")}
	}
	return app.Migrate(url, func(m *store.Migrator) error {
		switch fs.Arg(0) {
		case "up":
			if err := m.Up(); err != nil {
				return err
			}
		case "down":
			if err := m.Down(); err != nil {
				return err
			}
		case "version":
		default:
			return usageError{fmt.Errorf("unknown migrate action %q: want up, down or version", fs.Arg(0))}
		}
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
			fmt.Fprintf(stdout, "version: none (empty database); this relay's latest: %d\n", latest)
		case dirty:
			fmt.Fprintf(stdout, "version: %d (dirty: a migration failed half way); this relay's latest: %d\n", v, latest)
		default:
			fmt.Fprintf(stdout, "version: %d; this relay's latest: %d\n", v, latest)
		}
		return nil
	})
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	fs, path, err := flags("check-config", args, stderr, nil)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if err := app.CheckConfig(cfg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "config OK: routes %d, conversations %d\n", len(cfg.Routes), len(cfg.Conversations))
	return nil
}
