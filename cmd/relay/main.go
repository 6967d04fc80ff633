// Command relay carries alerts from Alertmanager and CI systems into Skype
// for Business conversations.
//
//	relay serve        [--config FILE] [--no-migrate] [--web.config.file FILE] [--web.enable-lifecycle]
//	relay migrate      up|version|force N|down [--config FILE]
//	relay check-config [--config FILE] [--secrets]
//	relay render       --route R [--config FILE] [--payload FILE | --delivery ID] [--secrets]
//	relay deliveries   list|show|redeliver
//	relay send-test    --conversation NAME [--text TEXT] [--wait 2m]
//
// Flags may come before or after a command's other arguments. The
// configuration file comes from --config or RELAY_CONFIG; the database
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
)

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
  relay serve        [--config FILE] [--no-migrate] [--web.config.file FILE] [--web.enable-lifecycle]
                                                     run the relay (web config: TLS, basic auth;
                                                     lifecycle: POST /-/reload)
  relay migrate      up|version [--config FILE]       apply pending migrations, or show the schema's version
  relay migrate      force N [--config FILE]          record version N after a failed migration (see README)
  relay migrate      down [--config FILE]             revert every migration, deleting all data (development)
  relay check-config [--config FILE] [--secrets]      load the config and render every route's template
  relay render       --route R [--config FILE] [--payload FILE | --delivery ID] [--header 'K: V']... [--secrets]
                                                     print exactly what a webhook would send
  relay deliveries   list|show|redeliver [flags]      inspect deliveries and redeliver them (audit API client)
  relay send-test    --conversation NAME [--text T]   send a message through the running relay, wait, print the attempts
  relay version                                       print the version, commit and build date

Flags may come before or after a command's other arguments. The config file
comes from --config or RELAY_CONFIG, the database from DATABASE_URL.
check-config and render read secret files only with --secrets.
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
	case "send-test":
		err = sendTest(args, stdout, stderr)
	case "version", "--version":
		err = versionCmd(args, stdout)
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

// flags parses the options every subcommand shares, plus extra ones, and
// returns the positional arguments. Flags may come before, between or
// after them ("relay migrate up --config F" and "relay migrate --config F
// up" are the same).
func flags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) ([]string, string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (default: $RELAY_CONFIG)")
	if extra != nil {
		extra(fs)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, "", err
	}
	return pos, *path, nil
}

// noArgs rejects positional arguments of a command that takes none.
func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", pos[0])}
	}
	return nil
}

var errNoConfig = errors.New("no configuration: pass --config FILE or set RELAY_CONFIG")

func loadConfig(path string) (*config.Config, error) {
	if path == "" && os.Getenv(config.EnvConfig) == "" {
		return nil, usageError{errNoConfig}
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
	var noMigrate, lifecycle bool
	var webConfig string
	pos, path, err := flags("serve", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&noMigrate, "no-migrate", false, "do not apply pending migrations at start")
		fs.StringVar(&webConfig, "web.config.file", "", "Prometheus web configuration file: TLS and basic auth for the listener")
		fs.BoolVar(&lifecycle, "web.enable-lifecycle", false, "serve POST /-/reload (SIGHUP reloads either way)")
	})
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	app.SetVersion(build.Version)
	logger := newLogger(cfg, stderr).With(slog.String("version", build.Version))
	if build.Commit != "" {
		logger = logger.With(slog.String("commit", build.Commit))
	}
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
	opts := app.Options{
		SkipMigrate:     noMigrate,
		Reload:          func() (*config.Config, error) { return config.Load(path, os.Getenv) },
		ReloadRequests:  reloads,
		WebConfigFile:   webConfig,
		EnableLifecycle: lifecycle,
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// A limit derived from ingest.max_inflight_bytes (see
		// app.MemoryLimit); GOMEMLIMIT in the environment wins.
		opts.SetMemoryLimit = func(n int64) { debug.SetMemoryLimit(n) }
	}
	return app.Run(ctx, cfg, logger, opts)
}
