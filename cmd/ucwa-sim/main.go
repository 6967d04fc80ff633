// Command ucwa-sim runs the UCWA server simulator (relay/deliver/ucwa/ucwasim)
// as a standalone program for demos, manual tests and benchmarks.
//
// At start it prints one line per endpoint to stdout, the first being
// exactly "discovery_url=<primary root URL>", then serves until SIGINT or
// SIGTERM. Accepted messages and protocol violations are logged to stderr
// as JSON lines. "ucwa-sim -h" lists the flags and the HTTP control API
// (faults, pool failures and their recovery, recipients that decline or
// answer slowly, links on another host, request rates), as GET /sim/ on
// the control URL does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/skype-relay/relay/relay/deliver/ucwa/ucwasim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses flags, starts the simulator, prints its endpoints and serves
// until a signal arrives. It returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ucwa-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("listen-host", "127.0.0.1", "host to listen on")
	rootPort := fs.Int("root-port", 0, "port of the primary discovery root (0 = random)")
	controlPort := fs.Int("control-port", 0, "port of the control API (0 = random)")
	username := fs.String("username", "alertbot@contoso.com", "bot account")
	password := fs.String("password", "", "bot password (default \"secret\"; prefer -password-file)")
	passwordFile := fs.String("password-file", "", "file holding the bot password")
	timeScale := fs.Float64("time-scale", 1, "multiplier of every protocol timer (0.01 = 100x faster)")
	embed := fs.Bool("embed", true, "embed resources in events")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: ucwa-sim [flags]")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\n"+ucwasim.ControlHelp())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

	pw := *password
	if *passwordFile != "" {
		if pw != "" {
			logger.Error("use -password or -password-file, not both")
			return 2
		}
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			logger.Error("read password file", slog.Any("err", err))
			return 2
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if *timeScale <= 0 {
		logger.Error("-time-scale must be positive")
		return 2
	}

	sim, err := ucwasim.NewOn(ucwasim.Config{
		Username:       *username,
		Password:       pw,
		TimeScale:      *timeScale,
		EmbedResources: *embed,
		Logger:         logger,
	}, *host, *rootPort, *controlPort)
	if err != nil {
		logger.Error("start simulator", slog.Any("err", err))
		return 1
	}
	defer sim.Close()

	roots := sim.DiscoveryURLs()
	fmt.Fprintf(stdout, "discovery_url=%s\n", roots[0])
	fmt.Fprintf(stdout, "discovery_url_backup=%s\n", roots[1])
	fmt.Fprintf(stdout, "control_url=%s\n", sim.ControlURL())
	for _, p := range sim.PoolNames() {
		fmt.Fprintf(stdout, "pool %s %s\n", p, sim.PoolURL(p))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	logger.Info("shutting down")
	return 0
}
