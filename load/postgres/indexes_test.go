package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// indexDefs returns the definitions of the indexes on the tables of
// record other than their primary keys, sorted.
func indexDefs(t *testing.T, conn *pgx.Conn, schemaName string) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT indexdef FROM pg_indexes i
		WHERE schemaname = $1 AND tablename IN ('profiles', 'profile_relationships')
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		                  WHERE c.conname = i.indexname AND n.nspname = $1)
		ORDER BY indexname`, schemaName)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return defs
}

// TestSecondaryIndexes: the indexes the sink drops and builds again are
// exactly those the migrations create besides the primary keys, and come
// back exactly as the migrations define them.
func TestSecondaryIndexes(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	for _, schemaName := range []string{DefaultSchema, `Odd "name"; DROP`} {
		t.Run(schemaName, func(t *testing.T) {
			if err := MigrateConn(t.Context(), conn, schemaName); err != nil {
				t.Fatal(err)
			}
			migrated := indexDefs(t, conn, schemaName)
			if len(migrated) != len(secondaryIndexes) {
				t.Fatalf("the migrations create %d secondary indexes, the sink knows %d:\n%v", len(migrated), len(secondaryIndexes), migrated)
			}
			q := buildIndexQueries(schemaName)
			if _, err := conn.Exec(t.Context(), q.drop); err != nil {
				t.Fatal(err)
			}
			if got := indexDefs(t, conn, schemaName); len(got) != 0 {
				t.Fatalf("left after the drop: %v", got)
			}
			// A writer holds the table for longer than the session's
			// statement timeout, so the build, which must wait for it,
			// outlasts the timeout, which must not apply to it. Waiting
			// on a lock, unlike building on a busy machine, takes the
			// same time everywhere.
			writer := connect(t, url)
			tx, err := writer.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(t.Context(), `LOCK TABLE `+pgx.Identifier{schemaName, "profiles"}.Sanitize()+` IN ROW EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			released := make(chan error, 1)
			go func() {
				time.Sleep(600 * time.Millisecond)
				released <- tx.Commit(context.WithoutCancel(t.Context()))
			}()
			if _, err := conn.Exec(t.Context(), `SET statement_timeout = '200ms'`); err != nil {
				t.Fatal(err)
			}
			defer conn.Exec(context.WithoutCancel(t.Context()), `RESET statement_timeout`)
			start := time.Now()
			n, err := restoreIndexesOn(t.Context(), conn, q)
			if err != nil || n != len(secondaryIndexes) {
				t.Fatalf("restored %d, %v", n, err)
			}
			if err := <-released; err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took < 200*time.Millisecond {
				t.Fatalf("the build took %v: it did not wait for the writer, so the timeout was never tested", took)
			}
			if _, err := conn.Exec(t.Context(), `RESET statement_timeout`); err != nil {
				t.Fatal(err)
			}
			if got := indexDefs(t, conn, schemaName); !slices.Equal(got, migrated) {
				t.Errorf("restored indexes\n%v\ndiffer from the migrations'\n%v", got, migrated)
			}
			if n, err := restoreIndexesOn(t.Context(), conn, q); err != nil || n != 0 {
				t.Errorf("second restore built %d, %v", n, err)
			}
		})
	}
}

// TestBackfillDefersIndexes: a first backfill runs without the secondary
// indexes, and they exist again however its run ends.
func TestBackfillDefersIndexes(t *testing.T) {
	tests := []struct {
		name string
		// end ends the run; afterwards the indexes must be back, possibly
		// only after what again does.
		end   func(t *testing.T, s *Sink, st load.State, admin *pgx.Conn)
		again func(t *testing.T, url string)
	}{
		{"final commit", func(t *testing.T, s *Sink, st load.State, admin *pgx.Conn) {
			st.LastRun, st.Run = st.Run, nil
			if err := s.Commit(t.Context(), st); err != nil {
				t.Fatal(err)
			}
			if n := len(indexDefs(t, admin, DefaultSchema)); n != len(secondaryIndexes) {
				t.Errorf("%d secondary indexes after the final commit, before Close", n)
			}
			s.Close(t.Context())
		}, nil},
		{"closed without a final commit", func(t *testing.T, s *Sink, _ load.State, _ *pgx.Conn) {
			// A write not committed: Close discards it and builds the indexes.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"killed, next Begin", func(t *testing.T, s *Sink, _ load.State, admin *pgx.Conn) {
			killed(t, s, admin)
		}, func(t *testing.T, url string) {
			s, _ := begin(t, url, Config{}, "")
			if s.deferred {
				t.Error("tables with rows: indexes deferred again")
			}
			s.Close(t.Context())
		}},
		{"killed, migrate", func(t *testing.T, s *Sink, _ load.State, admin *pgx.Conn) {
			killed(t, s, admin)
		}, func(t *testing.T, url string) {
			if err := Migrate(t.Context(), url, DefaultSchema); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			mem := newAllocator(t)
			admin := connect(t, url)
			s, st := begin(t, url, Config{}, "run-1")
			if !s.deferred {
				t.Fatal("empty tables: want the secondary indexes deferred")
			}
			if got := indexDefs(t, admin, DefaultSchema); len(got) != 0 {
				t.Errorf("during the backfill readers see %v, want no secondary index", got)
			}
			write(t, s, load.Batch{
				Profiles:      record(t, mem, schema.Profiles, profile("a", t0, "run-1"), profile("b", t0, "run-1")),
				Relationships: record(t, mem, schema.ProfileRelationships, relationship("a", "lists", "L", "run-1")),
			})
			if err := s.Commit(t.Context(), st); err != nil {
				t.Fatal(err)
			}
			write(t, s, load.Batch{Profiles: record(t, mem, schema.Profiles, profile("c", t0, "run-1"))})
			tt.end(t, s, st, admin)
			if tt.again != nil {
				if got := indexDefs(t, admin, DefaultSchema); len(got) == len(secondaryIndexes) {
					t.Error("the killed run's indexes came back by themselves")
				}
				tt.again(t, url)
			}
			if got := indexDefs(t, admin, DefaultSchema); len(got) != len(secondaryIndexes) {
				t.Errorf("after the run: %v, want all %d secondary indexes", got, len(secondaryIndexes))
			}
			if n := count(t, admin, `SELECT count(*) FROM klaviyo.profiles WHERE email LIKE '%@example.com'`); n < 2 {
				t.Errorf("%d profiles, want the committed ones", n)
			}
		})
	}
}

// killed ends s's backend as a kill of the process would, and closes s,
// which then cannot build anything.
func killed(t *testing.T, s *Sink, admin *pgx.Conn) {
	t.Helper()
	pid := s.conn.PgConn().PID()
	if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	// Wait until the backend is gone and the sink's connection knows it.
	for i := 0; s.conn.Ping(t.Context()) == nil; i++ {
		if i == 100 {
			t.Fatal("backend survived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close(t.Context())
}

// TestBackfillKeepsIndexesUnderReaders: a reader inside a transaction on
// the tables keeps the indexes from being dropped; the backfill neither
// waits for it nor drops them.
func TestBackfillKeepsIndexesUnderReaders(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if err := Migrate(t.Context(), url, DefaultSchema); err != nil {
		t.Fatal(err)
	}
	reader := connect(t, url)
	tx, err := reader.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	if _, err := tx.Exec(t.Context(), `SELECT count(*) FROM klaviyo.profiles`); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, url, Config{})
	s.deferLockWait = 50 * time.Millisecond
	if _, err := s.Begin(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.deferred || !s.fast {
		t.Errorf("deferred %v, direct %v: want the indexes kept and direct COPY still", s.deferred, s.fast)
	}
	if got := indexDefs(t, connect(t, url), DefaultSchema); len(got) != len(secondaryIndexes) {
		t.Errorf("indexes %v, want all kept", got)
	}
}
