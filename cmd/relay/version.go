package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at build time by the Makefile and the Dockerfile:
//
//	-ldflags "-X main.version=v0.1.0 -X main.commit=<sha> -X main.date=<RFC 3339>"
//
// A build without them (go build, go install) takes what the Go toolchain
// recorded instead (see readBuild).
var (
	version string
	commit  string
	date    string
)

// build describes this binary; every other use of the version reads it.
var build = readBuild(version, commit, date, debug.ReadBuildInfo)

// buildInfo is what "relay version" prints.
type buildInfo struct {
	// Version is the release tag (v0.1.0), or the module version Go
	// derived from the repository (v0.1.1-0.20261202070000-4f1c2e9a1b2c),
	// or "dev".
	Version string
	// Commit is the git commit the binary was built from; Modified says
	// the working tree had uncommitted changes.
	Commit   string
	Modified bool
	// Date is when the binary was built (from -ldflags); CommitDate is
	// the commit's time, all a build without -ldflags knows.
	Date, CommitDate string
	Go               string
}

// readBuild takes the -ldflags values, and for each one not given, what
// the toolchain recorded: the module version and the VCS settings that go
// build stamps into binaries built in a git checkout.
func readBuild(version, commit, date string, read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := read(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				b.CommitDate = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

// String is the one-line form: "v0.1.0 (commit 4f1c2e9a1b2c, built
// 2026-12-02T08:00:00Z, go1.26.0 linux/amd64)".
func (b buildInfo) String() string {
	var parts []string
	if b.Commit != "" {
		c := "commit " + b.Commit
		if b.Modified {
			c += " with local changes"
		}
		parts = append(parts, c)
	}
	switch {
	case b.Date != "":
		parts = append(parts, "built "+b.Date)
	case b.CommitDate != "":
		parts = append(parts, "committed "+b.CommitDate)
	}
	parts = append(parts, b.Go)
	return b.Version + " (" + strings.Join(parts, ", ") + ")"
}

// versionCmd runs "relay version".
func versionCmd(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", args[0])}
	}
	_, err := fmt.Fprintln(stdout, "relay", build)
	return err
}
