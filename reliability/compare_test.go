package reliability

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/load/parquet"
	"github.com/klaviyo-etl/klaviyo-etl/load/postgres"
)

// The comparison is internal/e2etest's, shared with cmd/klaviyo-etl's
// end-to-end tests; what follows reads a target of this campaign.

type (
	row   = e2etest.Row
	tally = e2etest.Tally
)

// readProfiles reads the profiles of record of a target.
func readProfiles(t testing.TB, tg target) []row {
	t.Helper()
	if tg.sink == "parquet" {
		return e2etest.ReadParquetProfiles(t, tg.out)
	}
	return e2etest.ReadPostgresProfiles(t, tg.url, pgSchema)
}

// checkExact reads the target and fails t unless it holds exactly want,
// and, for Parquet, nothing but the committed files.
func checkExact(t testing.TB, tg target, want []klaviyosim.Profile) tally {
	t.Helper()
	tl := e2etest.Compare(readProfiles(t, tg), want, false)
	if !tl.Exact() {
		t.Errorf("output is not the data set: %v", tl)
	}
	if tg.sink == "parquet" {
		if debris := parquetDebris(t, tg.out); len(debris) > 0 {
			t.Errorf("debris in the output folder: %v", debris)
		}
	}
	if n := len(readRejects(t, tg)); n != 0 {
		t.Errorf("%d reject rows, want none", n)
	}
	return tl
}

// parquetDebris is e2etest.Debris, with a folder it cannot read as debris.
func parquetDebris(t testing.TB, dir string) []string {
	t.Helper()
	debris, err := e2etest.Debris(dir)
	if err != nil {
		return []string{err.Error()}
	}
	return debris
}

// readState returns a target's committed State.
func readState(t testing.TB, tg target) load.State {
	t.Helper()
	var st load.State
	var err error
	if tg.sink == "parquet" {
		st, err = parquet.ReadState(tg.out)
	} else {
		st, err = postgres.ReadState(context.Background(), tg.url, pgSchema)
	}
	if err != nil {
		t.Fatalf("read state: %v", err)
	}
	return st
}

// rejectRow is a profile_rejects row.
type rejectRow struct {
	ProfileID *string
	Field     *string
	Error     string
	Raw       []byte
}

// readRejects reads a target's profile_rejects rows.
func readRejects(t testing.TB, tg target) []rejectRow {
	t.Helper()
	var out []rejectRow
	if tg.sink == "parquet" {
		e2etest.EachParquetRecord(t, tg.out, "profile_rejects", func(rec arrow.RecordBatch) {
			c := e2etest.NewColumns(t, rec)
			for i := 0; i < int(rec.NumRows()); i++ {
				out = append(out, rejectRow{ProfileID: c.Str("profile_id", i), Field: c.Str("field", i),
					Error: *c.Str("error", i), Raw: c.Bytes("raw", i)})
			}
		})
		return out
	}
	conn := connect(t, tg.url)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT profile_id, field, error, raw FROM `+
		pgx.Identifier{pgSchema, "profile_rejects"}.Sanitize())
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil // no run got as far as migrating
		}
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r rejectRow
		if err := rows.Scan(&r.ProfileID, &r.Field, &r.Error, &r.Raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func newDatabase(t testing.TB) string { return pgtest.NewDatabase(t) }

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return conn
}
