package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/klaviyo-etl/klaviyo-etl/load/postgres"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
	"github.com/klaviyo-etl/klaviyo-etl/transform"
)

// upsertChunk is the rows per transaction of the upsert ceilings: the
// pipeline's checkpoint (100,000 profiles by default).
const upsertChunk = 100_000

// runCopy times the PostgreSQL ceilings on the rows the transform builds
// from the NDJSON records (built before any timing):
//
//   - copy: one COPY of every row into an empty profiles table of the
//     pipeline's own definition (migrations applied: primary key and three
//     indexes), in one transaction;
//   - copy-bare: the same into a table of the same columns without key or
//     indexes, for context;
//   - copy-upsert-new and copy-upsert-existing: per 100,000 rows, COPY into
//     a temporary staging table and INSERT … ON CONFLICT (id) DO UPDATE,
//     first into an empty table (every row new), then again (every row
//     existing).
func runCopy(ctx context.Context, spec childSpec) ([]measurement, error) {
	recs, jsonBytes, err := buildRecords(spec.Records)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	var rows int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	if rows != int64(spec.Profiles) {
		return nil, fmt.Errorf("built %d profile rows of %d", rows, spec.Profiles)
	}
	plain, upsert := spec.Schema, spec.Schema+"_upsert"
	for _, s := range []string{plain, upsert} {
		if err := postgres.Migrate(ctx, spec.DatabaseURL, s); err != nil {
			return nil, fmt.Errorf("migrate %s: %w", s, err)
		}
	}
	conn, err := connect(ctx, spec.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	cols := schema.Profiles.Names()
	table := pgx.Identifier{plain, schema.Profiles.Name}

	var out []measurement
	m := measurement{Name: "copy", JSONBytes: jsonBytes, Rows: rows}
	settle(ctx, conn)
	err = timed(spec, &m, func() error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			n, err := tx.CopyFrom(ctx, table, cols, newArrowSource(recs))
			if err == nil && n != rows {
				err = fmt.Errorf("copied %d rows of %d", n, rows)
			}
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	out = append(out, m)
	// Only the first timed part writes the CPU profile.
	spec.CPUProfile = ""

	// For context: the same COPY into a table of the same columns without
	// the primary key and the indexes.
	bare := pgx.Identifier{plain, "profiles_bare"}
	if _, err := conn.Exec(ctx, "CREATE TABLE "+bare.Sanitize()+" (LIKE "+table.Sanitize()+")"); err != nil {
		return nil, fmt.Errorf("bare table: %w", err)
	}
	m = measurement{Name: "copy-bare", JSONBytes: jsonBytes, Rows: rows}
	settle(ctx, conn)
	err = timed(spec, &m, func() error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, bare, cols, newArrowSource(recs))
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("copy without indexes: %w", err)
	}
	out = append(out, m)

	target := pgx.Identifier{upsert, schema.Profiles.Name}
	for _, name := range []string{"copy-upsert-new", "copy-upsert-existing"} {
		m := measurement{Name: name, JSONBytes: jsonBytes, Rows: rows}
		settle(ctx, conn)
		err := timed(spec, &m, func() error { return upsertAll(ctx, conn, target, recs) })
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// settle writes out the server's dirty buffers before a timed part, as the
// bench does before every PostgreSQL pipeline run (bench.checkpoint).
func settle(ctx context.Context, conn *pgx.Conn) {
	conn.Exec(ctx, "CHECKPOINT")
}

// connect opens a connection with the session settings the PostgreSQL sink
// uses, so that the ceilings run under the same ones.
func connect(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	for k, v := range map[string]string{"work_mem": "64MB", "temp_buffers": "256MB", "jit": "off"} {
		if _, ok := cfg.RuntimeParams[k]; !ok {
			cfg.RuntimeParams[k] = v
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

// upsertAll merges every row into target through a staging table, one
// transaction per upsertChunk rows.
func upsertAll(ctx context.Context, conn *pgx.Conn, target pgx.Identifier, recs []arrow.RecordBatch) error {
	cols := schema.Profiles.Names()
	var set []string
	for _, c := range cols[1:] {
		q := pgx.Identifier{c}.Sanitize()
		set = append(set, q+" = EXCLUDED."+q)
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	list := strings.Join(quoted, ", ")
	create := "CREATE TEMP TABLE IF NOT EXISTS bench_stage (LIKE " + target.Sanitize() + ") ON COMMIT DELETE ROWS"
	merge := "INSERT INTO " + target.Sanitize() + " AS p (" + list + ") SELECT " + list + " FROM pg_temp.bench_stage" +
		" ON CONFLICT (id) DO UPDATE SET " + strings.Join(set, ", ") +
		" WHERE p.updated IS NULL OR EXCLUDED.updated >= p.updated"
	if _, err := conn.Exec(ctx, create); err != nil {
		return fmt.Errorf("staging table: %w", err)
	}
	for start := 0; start < len(recs); {
		end, n := start, int64(0)
		for end < len(recs) && n < upsertChunk {
			n += recs[end].NumRows()
			end++
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", "bench_stage"}, cols, newArrowSource(recs[start:end])); err != nil {
				return fmt.Errorf("copy to staging: %w", err)
			}
			tag, err := tx.Exec(ctx, merge)
			if err != nil {
				return fmt.Errorf("merge: %w", err)
			}
			if tag.RowsAffected() != n {
				return fmt.Errorf("merge applied %d rows of %d", tag.RowsAffected(), n)
			}
			return nil
		})
		if err != nil {
			return err
		}
		start = end
	}
	return nil
}

// buildRecords transforms the NDJSON records into profiles record batches
// of 10,000 rows, as the pipeline would.
func buildRecords(path string) ([]arrow.RecordBatch, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	b := transform.NewBuilder(memory.NewGoAllocator(), transform.Options{RunID: "bench-ceiling", ExtractedAt: time.Now().UTC()})
	defer b.Release()
	var recs []arrow.RecordBatch
	var size int64
	flush := func() error {
		out := b.Flush()
		defer out.Release()
		if out.Rejects != nil && out.Rejects.NumRows() > 0 {
			return fmt.Errorf("the transform rejected %d values", out.Rejects.NumRows())
		}
		if out.Profiles != nil && out.Profiles.NumRows() > 0 {
			out.Profiles.Retain()
			recs = append(recs, out.Profiles)
		}
		return nil
	}
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, 0, errors.New("record longer than 1 MiB")
		}
		if len(line) > 1 {
			size += int64(len(line) - 1)
			b.Add(line[:len(line)-1])
			if b.Rows() >= 10_000 {
				if err := flush(); err != nil {
					return nil, 0, err
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
	}
	if err := flush(); err != nil {
		return nil, 0, err
	}
	return recs, size, nil
}

// arrowSource is a pgx.CopyFromSource over profiles record batches, read
// column by column from the Arrow arrays into reused cells (the way the
// PostgreSQL sink reads them, without its NUL sanitising, which these
// records do not need).
type arrowSource struct {
	recs []arrow.RecordBatch
	rec  int
	row  int
	n    int
	cols []arrowColumn
	vals []any
}

type arrowColumn struct {
	kind  schema.Kind
	arr   arrow.Array
	str   *array.String
	ts    *array.Timestamp
	f64   *array.Float64
	text  textCell
	time  timeCell
	float floatCell
}

func newArrowSource(recs []arrow.RecordBatch) *arrowSource {
	return &arrowSource{recs: recs, rec: -1, cols: make([]arrowColumn, len(schema.Profiles.Columns)), vals: make([]any, len(schema.Profiles.Columns))}
}

func (s *arrowSource) Next() bool {
	s.row++
	for s.row >= s.n {
		s.rec++
		if s.rec >= len(s.recs) {
			return false
		}
		s.load(s.recs[s.rec])
	}
	return true
}

func (s *arrowSource) load(rec arrow.RecordBatch) {
	s.row, s.n = 0, int(rec.NumRows())
	for i, c := range schema.Profiles.Columns {
		col := &s.cols[i]
		col.kind, col.arr = c.Kind, rec.Column(i)
		switch c.Kind {
		case schema.String:
			col.str = col.arr.(*array.String)
		case schema.JSON:
			col.str = col.arr.(array.ExtensionArray).Storage().(*array.String)
		case schema.Timestamp:
			col.ts = col.arr.(*array.Timestamp)
		case schema.Double:
			col.f64 = col.arr.(*array.Float64)
		}
	}
}

func (s *arrowSource) Values() ([]any, error) {
	r := s.row
	for i := range s.cols {
		c := &s.cols[i]
		if c.arr.IsNull(r) {
			s.vals[i] = nil
			continue
		}
		switch c.kind {
		case schema.String:
			c.text.s = c.str.Value(r)
			s.vals[i] = &c.text
		case schema.JSON:
			s.vals[i] = c.str.Value(r)
		case schema.Timestamp:
			c.time.us = int64(c.ts.Value(r))
			s.vals[i] = &c.time
		case schema.Double:
			c.float.f = c.f64.Value(r)
			s.vals[i] = &c.float
		default:
			return nil, fmt.Errorf("column %d: unexpected kind", i)
		}
	}
	return s.vals, nil
}

func (s *arrowSource) Err() error { return nil }

type textCell struct{ s string }

func (c *textCell) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: c.s, Valid: true}, nil
}

type timeCell struct{ us int64 }

func (c *timeCell) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: time.UnixMicro(c.us).UTC(), Valid: true}, nil
}

type floatCell struct{ f float64 }

func (c *floatCell) Float64Value() (pgtype.Float8, error) {
	return pgtype.Float8{Float64: c.f, Valid: true}, nil
}
