package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/skype-relay/relay/relay"
	"github.com/skype-relay/relay/relay/relaytest"
	"github.com/skype-relay/relay/relay/store"
)

// TestClassify checks which errors are the database being unavailable
// (503, the sender retries) and which are ours (500), on errors PostgreSQL
// and pgx really return: each case provokes its error.
func TestClassify(t *testing.T) {
	t.Parallel()
	url := relaytest.NewDatabase(t)
	ctx := context.Background()
	connect := func(t *testing.T, url string) *pgx.Conn {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		return conn
	}
	admin := connect(t, url)
	if _, err := admin.Exec(ctx, `CREATE TABLE scratch (id int PRIMARY KEY, v int CHECK (v >= 0))`+
		`; INSERT INTO scratch VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	// raise makes the server answer with code, as it would on its own.
	raise := func(code string) func(t *testing.T) error {
		return func(t *testing.T) error {
			_, err := connect(t, url).Exec(ctx, fmt.Sprintf(`DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '%s'; END $$`, code))
			return err
		}
	}
	exec := func(sql string, args ...any) func(t *testing.T) error {
		return func(t *testing.T) error {
			_, err := connect(t, url).Exec(ctx, sql, args...)
			return err
		}
	}
	// lockedScratch holds a lock on scratch until the test ends.
	lockedScratch := func(t *testing.T) {
		t.Helper()
		tx, err := connect(t, url).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
		if _, err := tx.Exec(ctx, `LOCK TABLE scratch IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
	}

	type kind int
	const (
		unavailable kind = iota + 1
		internal
		invalid
	)
	tests := []struct {
		name string
		make func(t *testing.T) error
		code string // when set, the SQLSTATE the case must have provoked
		want kind
	}{
		// The database cannot do it now.
		{name: "connection refused", want: unavailable, make: func(t *testing.T) error {
			_, err := pgx.Connect(ctx, "postgres://relay@"+relaytest.FreeAddr(t)+"/relay?sslmode=disable&connect_timeout=5")
			return err
		}},
		{name: "connection cut mid-query", want: unavailable, make: func(t *testing.T) error {
			proxy, proxied := relaytest.NewProxy(t, url)
			conn := connect(t, proxied)
			errc := make(chan error, 1)
			go func() {
				_, err := conn.Exec(ctx, `SELECT pg_sleep(30) /* cut */`)
				errc <- err
			}()
			store.WaitFor(t, "the query to run", func() bool {
				var n int
				err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE state = 'active' AND query LIKE '%/* cut */'`).Scan(&n)
				return err == nil && n == 1
			})
			proxy.Down()
			return <-errc
		}},
		{name: "a connection that died is used again", want: unavailable, make: func(t *testing.T) error {
			proxy, proxied := relaytest.NewProxy(t, url)
			conn := connect(t, proxied)
			proxy.Down()
			_, _ = conn.Exec(ctx, `SELECT 1`)
			_, err := conn.Exec(ctx, `SELECT 1`)
			return err
		}},
		{name: "admin shutdown (pg_terminate_backend)", want: unavailable, make: func(t *testing.T) error {
			conn := connect(t, url)
			var ok bool
			if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, conn.PgConn().PID()).Scan(&ok); err != nil || !ok {
				t.Fatalf("pg_terminate_backend: %v, %v", ok, err)
			}
			// Depending on when the client reads, it sees the server's
			// FATAL 57P01 or only the closed socket: both are unavailable.
			_, err := conn.Exec(ctx, `SELECT 1`)
			return err
		}},
		{name: "deadline of the operation", want: unavailable, make: func(t *testing.T) error {
			conn := connect(t, url)
			ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			_, err := conn.Exec(ctx, `SELECT pg_sleep(30)`)
			return err
		}},
		{name: "statement_timeout", code: "57014", want: unavailable,
			make: exec(`SET statement_timeout = '10ms'; SELECT pg_sleep(30)`)},
		{name: "lock_timeout", code: "55P03", want: unavailable, make: func(t *testing.T) error {
			lockedScratch(t)
			return exec(`SET lock_timeout = '10ms'; SELECT * FROM scratch`)(t)
		}},
		{name: "read-only transaction (the primary became a replica)", code: "25006", want: unavailable, make: func(t *testing.T) error {
			return pgx.BeginTxFunc(ctx, connect(t, url), pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `UPDATE scratch SET v = v + 1`)
				return err
			})
		}},
		{name: "serialization failure", code: "40001", want: unavailable, make: func(t *testing.T) error {
			return pgx.BeginTxFunc(ctx, connect(t, url), pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT * FROM scratch`); err != nil { // takes the snapshot
					return fmt.Errorf("unexpected: %w", err)
				}
				if _, err := admin.Exec(ctx, `UPDATE scratch SET v = v + 1 WHERE id = 1`); err != nil {
					return fmt.Errorf("unexpected: %w", err)
				}
				_, err := tx.Exec(ctx, `UPDATE scratch SET v = v + 1 WHERE id = 1`)
				return err
			})
		}},
		{name: "a migration changed a table under a cached statement", code: "0A000", want: unavailable, make: func(t *testing.T) error {
			conn := connect(t, url)
			selectAll := func() error { // prepared, and the statement cached
				rows, _ := conn.Query(ctx, `SELECT * FROM scratch`)
				rows.Close()
				return rows.Err()
			}
			if err := selectAll(); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.Exec(ctx, `ALTER TABLE scratch ADD COLUMN IF NOT EXISTS note text`); err != nil {
				t.Fatal(err)
			}
			return selectAll()
		}},
		{name: "deadlock", code: "40P01", want: unavailable, make: raise("40P01")},
		{name: "too many connections", code: "53300", want: unavailable, make: raise("53300")},
		{name: "starting up", code: "57P03", want: unavailable, make: raise("57P03")},
		{name: "crash shutdown", code: "57P02", want: unavailable, make: raise("57P02")},
		{name: "connection failure", code: "08006", want: unavailable, make: raise("08006")},
		{name: "context canceled", want: unavailable, make: func(*testing.T) error { return context.Canceled }},
		{name: "store shutting down", want: unavailable, make: func(t *testing.T) error {
			db, err := store.Open(ctx, url, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			_, err = db.Enqueue(ctx, &store.NewNotification{Route: "r", DedupKey: "k", Payload: []byte(`{}`),
				Messages: []store.NewMessage{{Conversation: "c", Text: "t"}}})
			return err
		}},

		// Bugs: retrying the same request cannot help.
		{name: "syntax error", code: "42601", want: internal, make: exec(`SELEC 1`)},
		{name: "undefined column", code: "42703", want: internal, make: exec(`SELECT nope FROM notifications`)},
		{name: "unique violation", code: "23505", want: internal, make: exec(`INSERT INTO scratch (id, v) VALUES (1, 1)`)},
		{name: "check violation", code: "23514", want: internal, make: exec(`UPDATE scratch SET v = -1`)},
		{name: "data exception: division by zero", code: "22012", want: internal, make: exec(`SELECT 1/0`)},
		{name: "data exception: invalid json", code: "22P02", want: internal, make: exec(`SELECT $1::text::jsonb`, `{`)},
		{name: "data exception: numeric overflow", code: "22003", want: internal, make: exec(`SELECT $1::text::jsonb`, `[1e131072]`)},
		{name: "PostgreSQL internal error", code: "XX000", want: internal, make: raise("XX000")},
		{name: "encode error", want: internal, make: exec(`SELECT $1::int4`, struct{ X chan int }{})},
		{name: "scan error", want: internal, make: func(t *testing.T) error {
			var n int
			return connect(t, url).QueryRow(ctx, `SELECT 'seven'`).Scan(&n)
		}},
		{name: "no rows", want: internal, make: func(t *testing.T) error {
			var n int
			return connect(t, url).QueryRow(ctx, `SELECT 1 WHERE false`).Scan(&n)
		}},
		{name: "conn busy (safe to retry, but a bug)", want: internal, make: func(t *testing.T) error {
			conn := connect(t, url)
			rows, err := conn.Query(ctx, `SELECT generate_series(1, 3)`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			_, err = conn.Exec(ctx, `SELECT 1`)
			if !pgconn.SafeToRetry(err) {
				t.Errorf("conn busy: SafeToRetry = false; this case no longer shows why SafeToRetry is not used")
			}
			return err
		}},
		{name: "broken invariant", want: internal, make: func(*testing.T) error {
			return errors.New("record notifications: no result for key k")
		}},

		// Kinds decided before the database keep theirs.
		{name: "already invalid", want: invalid, make: func(*testing.T) error {
			return fmt.Errorf("check: %w", relay.ErrInvalid)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.make(t)
			if raw == nil {
				t.Fatal("the case provoked no error")
			}
			t.Logf("provoked: %v (%T)", raw, raw)
			if tt.code != "" {
				var pgErr *pgconn.PgError
				if !errors.As(raw, &pgErr) || pgErr.Code != tt.code {
					t.Fatalf("the case provoked %v, want SQLSTATE %s", raw, tt.code)
				}
			}
			got := store.Classify("do it", raw)
			var is kind
			switch {
			case errors.Is(got, relay.ErrUnavailable) && !errors.Is(got, relay.ErrInternal):
				is = unavailable
			case errors.Is(got, relay.ErrInternal) && !errors.Is(got, relay.ErrUnavailable):
				is = internal
			case errors.Is(got, relay.ErrInvalid):
				is = invalid
			}
			if is != tt.want {
				t.Errorf("classify(%v) = %v: kind %d, want %d (1 unavailable, 2 internal, 3 invalid)", raw, got, is, tt.want)
			}
			if !errors.Is(got, raw) {
				t.Errorf("classify(%v) = %v, which does not wrap the error", raw, got)
			}
		})
	}
	if store.Classify("do it", nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
