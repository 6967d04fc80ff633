// Package relaytest gives tests a real PostgreSQL database and fixtures.
//
// Tests get their database from TEST_DATABASE_URL, a URL whose user may
// create databases. Each call of NewDatabase creates a fresh database from a
// migrated template and drops it when the test ends, so tests run in
// parallel without seeing each other's rows. Without TEST_DATABASE_URL a
// test is skipped, unless RELAY_REQUIRE_DB=1 (set by the test command and
// CI), which turns the skip into a failure.
package relaytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skype-relay/relay/relay/store"
)

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// AdminURL returns TEST_DATABASE_URL, skipping (or failing, with
// RELAY_REQUIRE_DB=1) the test when it is unset.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("RELAY_REQUIRE_DB") == "1" {
			t.Fatal("TEST_DATABASE_URL is not set and RELAY_REQUIRE_DB=1: run the tests with deploy/local/test.sh")
		}
		t.Skip("TEST_DATABASE_URL is not set; run the tests with deploy/local/test.sh")
	}
	return u
}

// NewDatabase creates an empty-but-migrated database for this test and
// returns its URL. The database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	templateOnce.Do(func() { templateName, templateErr = makeTemplate(admin) })
	if templateErr != nil {
		t.Fatalf("prepare template database: %v", templateErr)
	}
	name := "relay_test_" + randomSuffix()
	if err := adminExec(admin, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateName)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if err := adminExec(admin, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	return WithDatabase(t, admin, name)
}

// NewEmptyDatabase creates a database with no tables (for migration tests).
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	name := "relay_test_" + randomSuffix()
	if err := adminExec(admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() { _ = adminExec(admin, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)) })
	return WithDatabase(t, admin, name)
}

// WithDatabase returns admin with its database name replaced.
func WithDatabase(t testing.TB, admin, name string) string {
	t.Helper()
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL must be a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func makeTemplate(admin string) (string, error) {
	name := "relay_tmpl_" + randomSuffix()
	if err := adminExec(admin, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	m, err := store.NewMigrator(u.String())
	if err != nil {
		return "", err
	}
	defer m.Close()
	if err := m.Up(); err != nil {
		return "", err
	}
	// The template is left behind on purpose when the process ends: it is
	// tiny, and dropping it from every test binary would race.
	return name, nil
}

func adminExec(admin, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
