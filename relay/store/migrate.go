package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/skype-relay/relay/migrations"
	"github.com/skype-relay/relay/relay"
)

// Migrator applies the embedded migrations. golang-migrate holds a
// PostgreSQL advisory lock while it works, so replicas starting together
// are safe.
type Migrator struct {
	m *migrate.Migrate
}

// NewMigrator prepares migrations against the database at url.
func NewMigrator(url string) (*Migrator, error) {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", redactParseError(err))
	}
	sqlDB := stdlib.OpenDB(*cfg)
	driver, err := migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
	if err != nil {
		_ = sqlDB.Close()
		return nil, classify("connect for migrations", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("prepare migrations: %w", err)
	}
	return &Migrator{m: m}, nil
}

// Close releases the migrator's connection.
func (mg *Migrator) Close() error {
	srcErr, dbErr := mg.m.Close()
	return errors.Join(srcErr, dbErr)
}

// Up applies every pending migration.
func (mg *Migrator) Up() error {
	if err := mg.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return classify("apply migrations", err)
	}
	return nil
}

// Force records version as the schema's version and clears the dirty flag,
// running nothing: after a migration failed (its transaction rolled back,
// golang-migrate still marks it dirty), force the version the schema is
// really at, then apply again. 0 means no migration applied.
func (mg *Migrator) Force(version int) error {
	latest, err := LatestVersion()
	if err != nil {
		return err
	}
	if version < 0 || version > int(latest) {
		return fmt.Errorf("force version %d: %w: want 0 to %d", version, relay.ErrInvalid, latest)
	}
	if version == 0 {
		version = database.NilVersion
	}
	if err := mg.m.Force(version); err != nil {
		return classify("force migration version", err)
	}
	return nil
}

// Down reverts every migration.
func (mg *Migrator) Down() error {
	if err := mg.m.Down(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return classify("revert migrations", err)
	}
	return nil
}

// Version reports the applied version; ok is false on an empty database.
func (mg *Migrator) Version() (version uint, dirty, ok bool, err error) {
	v, dirty, err := mg.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, false, nil
	}
	if err != nil {
		return 0, false, false, classify("read migration version", err)
	}
	return v, dirty, true, nil
}

// LatestVersion is the highest migration number embedded in the binary.
func LatestVersion() (uint, error) {
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		return 0, fmt.Errorf("read embedded migrations: %w", err)
	}
	var latest uint
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(num, 10, 32)
		if err != nil {
			continue
		}
		latest = max(latest, uint(v))
	}
	return latest, nil
}

// CheckSchema reports whether the database schema is at the version this
// binary needs. A newer schema passes: migrations only add, so a replica
// left on the previous release keeps working during a rollout.
func (db *DB) CheckSchema(ctx context.Context) error {
	latest, err := LatestVersion()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, db.opts.OpTimeout)
	defer cancel()
	var version int64
	var dirty bool
	err = db.pool.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations`).Scan(&version, &dirty)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (errors.As(err, &pgErr) && pgErr.Code == "42P01"):
		return errors.New("database schema is not migrated: run relay migrate up")
	case err != nil:
		return classify("read schema version", err)
	case dirty:
		return fmt.Errorf("migration %d failed half way (dirty): fix it, then relay migrate force", version)
	case uint(version) < latest:
		return fmt.Errorf("database schema is at version %d, this relay needs %d: run relay migrate up", version, latest)
	}
	return nil
}
