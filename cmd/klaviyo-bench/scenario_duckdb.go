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

// runDuckDB times DuckDB converting the dumped pages (Format "pages") or
// records (Format "records") into one Parquet file of schema.Profiles'
// flattened columns (zstd). Only the COPY statement is timed; opening
// DuckDB is not.
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
	src := spec.Records
	if spec.Format == "pages" {
		src = spec.Pages
	}
	out := filepath.Join(spec.Dir, "duckdb-profiles.parquet")
	query := duckdbCopy(src, spec.Format == "pages", out, time.Now().UTC())
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	m := measurement{Name: "duckdb-" + spec.Format, JSONBytes: fi.Size()}
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

// duckdbCopy is the conversion: every column of schema.Profiles selected
// in order under its name, written as zstd Parquet, from records read with
// their shape given (so nothing is sampled or guessed). Records come from
// an NDJSON file through read_json; pages, one JSON document per line,
// through read_json_objects and from_json on their data array, which
// DuckDB 1.5 runs ~20 times faster than read_json with a list column on
// documents of ~165 KB.
func duckdbCopy(src string, pages bool, out string, extractedAt time.Time) string {
	var attrs, loc, sel, attrsJSON, locJSON []string
	rec := ""
	if pages {
		rec = "r."
	}
	for _, c := range schema.Profiles.Columns {
		switch name := c.Name; {
		case name == "id":
			sel = append(sel, rec+"id AS id")
		case name == "_run_id":
			sel = append(sel, "'duckdb' AS _run_id")
		case name == "_extracted_at":
			sel = append(sel, "TIMESTAMPTZ '"+extractedAt.Format("2006-01-02 15:04:05.000000")+"+00' AS _extracted_at")
		case strings.HasPrefix(name, "location_"):
			f := strings.TrimPrefix(name, "location_")
			loc = append(loc, f+" "+duckdbType(c.Kind))
			locJSON = append(locJSON, `"`+f+`":"`+duckdbType(c.Kind)+`"`)
			sel = append(sel, rec+"attributes.location."+f+" AS "+name)
		default:
			attrs = append(attrs, name+" "+duckdbType(c.Kind))
			attrsJSON = append(attrsJSON, `"`+name+`":"`+duckdbType(c.Kind)+`"`)
			sel = append(sel, rec+"attributes."+name+" AS "+name)
		}
	}
	var from string
	if pages {
		attrsJSON = append(attrsJSON, `"location":{`+strings.Join(locJSON, ",")+`}`)
		structure := `[{"id":"VARCHAR","attributes":{` + strings.Join(attrsJSON, ",") + `}}]`
		from = "(SELECT unnest(from_json(json->'data', " + sqlString(structure) + ")) AS r FROM read_json_objects(" +
			sqlString(src) + ", format = 'newline_delimited', maximum_object_size = 67108864))"
	} else {
		attrs = append(attrs, "location STRUCT("+strings.Join(loc, ", ")+")")
		from = "read_json(" + sqlString(src) + ", format = 'newline_delimited', columns = {id: 'VARCHAR', attributes: 'STRUCT(" +
			strings.Join(attrs, ", ") + ")'})"
	}
	return "COPY (SELECT " + strings.Join(sel, ", ") + " FROM " + from + ")" +
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
