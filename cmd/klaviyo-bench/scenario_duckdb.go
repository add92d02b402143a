//go:build !nobenchduckdb

package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" database/sql driver

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// hasDuckDB says whether this binary can run the DuckDB ceiling.
const hasDuckDB = true

// runDuckDB times DuckDB converting the NDJSON records into one Parquet
// file of schema.Profiles' flattened columns (zstd). Only the COPY
// statement is timed; opening DuckDB is not.
func runDuckDB(ctx context.Context, spec childSpec) ([]measurement, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("duckdb: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("duckdb: %w", err)
	}
	defer conn.Close()
	if err := conn.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("duckdb: %w", err)
	}
	out := filepath.Join(spec.Dir, "duckdb-profiles.parquet")
	query := duckdbCopy(spec.Records, out, time.Now().UTC())
	fi, err := os.Stat(spec.Records)
	if err != nil {
		return nil, err
	}
	m := measurement{Name: "duckdb", JSONBytes: fi.Size()}
	err = timed(spec, &m, func() error {
		_, err := conn.ExecContext(ctx, query)
		return err
	})
	// DuckDB allocates outside the Go heap.
	m.AllocsValid = false
	if err != nil {
		return nil, fmt.Errorf("duckdb: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM read_parquet(?)`, out).Scan(&m.Rows); err != nil {
		return nil, fmt.Errorf("duckdb: count: %w", err)
	}
	if m.Rows != int64(spec.Profiles) {
		return nil, fmt.Errorf("duckdb wrote %d rows of %d", m.Rows, spec.Profiles)
	}
	if fi, err := os.Stat(out); err == nil {
		m.OutBytes = fi.Size()
	}
	return []measurement{m}, nil
}

// duckdbCopy is the conversion: read_json with the records' shape given
// (so nothing is sampled or guessed), every column of schema.Profiles
// selected in order under its name, written as zstd Parquet.
func duckdbCopy(records, out string, extractedAt time.Time) string {
	var attrs, loc, sel []string
	for _, c := range schema.Profiles.Columns {
		switch name := c.Name; {
		case name == "id":
			sel = append(sel, "id")
		case name == "_run_id":
			sel = append(sel, "'duckdb' AS _run_id")
		case name == "_extracted_at":
			sel = append(sel, "TIMESTAMPTZ '"+extractedAt.Format("2006-01-02 15:04:05.000000")+"+00' AS _extracted_at")
		case strings.HasPrefix(name, "location_"):
			f := strings.TrimPrefix(name, "location_")
			loc = append(loc, f+" "+duckdbType(c.Kind))
			sel = append(sel, "attributes.location."+f+" AS "+name)
		default:
			attrs = append(attrs, name+" "+duckdbType(c.Kind))
			sel = append(sel, "attributes."+name+" AS "+name)
		}
	}
	attrs = append(attrs, "location STRUCT("+strings.Join(loc, ", ")+")")
	columns := "{id: 'VARCHAR', attributes: 'STRUCT(" + strings.Join(attrs, ", ") + ")'}"
	return "COPY (SELECT " + strings.Join(sel, ", ") +
		" FROM read_json(" + sqlString(records) + ", format = 'newline_delimited', columns = " + columns + "))" +
		" TO " + sqlString(out) + " (FORMAT parquet, COMPRESSION zstd)"
}

func duckdbType(k schema.Kind) string {
	switch k {
	case schema.Timestamp:
		return "TIMESTAMPTZ"
	case schema.Double:
		return "DOUBLE"
	case schema.JSON:
		return "JSON"
	default:
		return "VARCHAR"
	}
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
