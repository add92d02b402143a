package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
)

// TestDuckDBReadsTheOutput opens the Parquet files with DuckDB, a reader
// independent of arrow-go, and checks row counts, column types and values.
func TestDuckDBReadsTheOutput(t *testing.T) {
	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 1500, Seed: 21, Unlimited: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	out := filepath.Join(t.TempDir(), "export")
	r := invoke(t, context.Background(), simEnv(sim), "run", "--out", out, "--checkpoint-rows", "400",
		"--rate-burst", "500/1s", "--rate-steady", "30000/1m", "--log-level", "warn", "--progress", "never")
	if r.code != 0 {
		t.Fatalf("run exited %d: %s", r.code, r.stderr)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	glob := filepath.Join(out, "profiles", "*.parquet")

	var rows, ids int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT id) FROM read_parquet(?)`, glob).Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != 1500 || ids != 1500 {
		t.Errorf("DuckDB counts %d rows, %d ids; want 1500 each", rows, ids)
	}

	types := map[string]string{}
	q, err := db.Query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))`, glob)
	if err != nil {
		t.Fatal(err)
	}
	for q.Next() {
		var name, typ string
		if err := q.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		types[name] = typ
	}
	q.Close()
	want := map[string]string{
		"id":                 "VARCHAR",
		"email":              "VARCHAR",
		"created":            "TIMESTAMP WITH TIME ZONE",
		"updated":            "TIMESTAMP WITH TIME ZONE",
		"location_latitude":  "DOUBLE",
		"location_longitude": "DOUBLE",
		"properties":         "JSON",
		"_extracted_at":      "TIMESTAMP WITH TIME ZONE",
	}
	for col, typ := range want {
		if types[col] != typ {
			t.Errorf("DuckDB sees %s as %q, want %s", col, types[col], typ)
		}
	}

	// Values agree with the data set for a sample of profiles.
	for i, p := range sim.Profiles() {
		if i%97 != 0 {
			continue
		}
		var email sql.NullString
		var created time.Time
		var nprops sql.NullString
		err := db.QueryRow(`SELECT email, created, json_extract_string(properties, '$."$source"')
			FROM read_parquet(?) WHERE id = ?`, glob, p.ID).Scan(&email, &created, &nprops)
		if err != nil {
			t.Fatalf("profile %s: %v", p.ID, err)
		}
		if exp := e2etest.ExpectedRow(p); (exp.Email == nil) != !email.Valid || (exp.Email != nil && *exp.Email != email.String) {
			t.Errorf("profile %s email %v, want %v", p.ID, email, exp.Email)
		}
		if !created.Equal(p.Created) {
			t.Errorf("profile %s created %v, want %v", p.ID, created, p.Created)
		}
		if src := string(p.Properties); nprops.Valid && !strings.Contains(src, nprops.String) {
			t.Errorf("profile %s: DuckDB read properties.$source %q not in %s", p.ID, nprops.String, src)
		}
	}
}
