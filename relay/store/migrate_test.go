package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	url := relaytest.NewEmptyDatabase(t)
	m, err := store.NewMigrator(url)
	if err != nil {
		t.Fatalf("NewMigrator: %v", err)
	}
	defer m.Close()
	latest, err := store.LatestVersion()
	if err != nil || latest == 0 {
		t.Fatalf("LatestVersion = %d, %v; want > 0", latest, err)
	}
	if _, _, ok, err := m.Version(); ok || err != nil {
		t.Fatalf("Version on empty database = ok %v, err %v; want no version", ok, err)
	}
	db, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CheckSchema(context.Background()); err == nil {
		t.Error("CheckSchema on an empty database = nil, want an error")
	}

	for i, step := range []struct {
		name string
		run  func() error
		want []string // tables that must exist afterwards
	}{
		{"up", m.Up, []string{"attempts", "console_sessions", "dedup_keys", "deliveries", "duplicates", "notifications", "redeliveries", "sessions"}},
		{"down", m.Down, nil},
		{"up again", m.Up, []string{"attempts", "console_sessions", "dedup_keys", "deliveries", "duplicates", "notifications", "redeliveries", "sessions"}},
	} {
		if err := step.run(); err != nil {
			t.Fatalf("step %d (%s): %v", i, step.name, err)
		}
		var tables []string
		rows, err := db.Pool().Query(context.Background(),
			`SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations' ORDER BY tablename`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			tables = append(tables, name)
		}
		rows.Close()
		if !slices.Equal(tables, step.want) {
			t.Errorf("after %s: tables %v, want %v", step.name, tables, step.want)
		}
	}
	v, dirty, ok, err := m.Version()
	if err != nil || !ok || dirty || v != latest {
		t.Errorf("Version = %d dirty=%v ok=%v err=%v, want %d clean", v, dirty, ok, err, latest)
	}
	if err := db.CheckSchema(context.Background()); err != nil {
		t.Errorf("CheckSchema after up = %v, want nil", err)
	}
}
