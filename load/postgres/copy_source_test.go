package postgres

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// recordSource is a pgx.CopyFromSource over one Arrow record — the way the
// sink encoded COPY before copyStream, kept for BenchmarkCopyCeiling (pgx
// CopyFrom, as cmd/klaviyo-bench's ceiling) and as the reference the
// encoder is compared with: each row's
// values are read straight from the Arrow arrays as pgx asks for them, so a
// batch is never materialised as [][]any. Strings and JSON pass through
// sanitize on the way.
//
// Values returns pointers to cells reused from row to row (pgx encodes a
// row before asking for the next), so no value is boxed on the heap except
// JSON strings, which pgx's JSON codec only takes as string or []byte.
type recordSource struct {
	n, row int
	cols   []sourceColumn
	vals   []any
	seq    *int64Cell // trailing staging column, nil when copying into a table of record
	clean  *sanitizer
	err    error
}

type sourceColumn struct {
	kind  schema.Kind
	arr   arrow.Array
	str   *array.String // String and JSON (the extension's storage)
	ts    *array.Timestamp
	f64   *array.Float64
	bin   *array.Binary
	nulls bool

	text  textCell
	time  timestamptzCell
	float float64Cell
	bytes bytesCell
}

// newRecordSource reads rec, already checked against t by checkRecord. A
// non-nil seq is appended to every row as the staging tables' _seq.
func newRecordSource(t *schema.Table, rec arrow.RecordBatch, seq *int64Cell, clean *sanitizer) (*recordSource, error) {
	s := &recordSource{
		n:     int(rec.NumRows()),
		row:   -1,
		cols:  make([]sourceColumn, len(t.Columns)),
		seq:   seq,
		clean: clean,
	}
	width := len(t.Columns)
	if seq != nil {
		width++
	}
	s.vals = make([]any, width)
	for i, c := range t.Columns {
		arr := rec.Column(i)
		sc := &s.cols[i]
		sc.kind = c.Kind
		sc.arr = arr
		sc.nulls = arr.NullN() > 0
		var ok bool
		switch c.Kind {
		case schema.String:
			sc.str, ok = arr.(*array.String)
		case schema.JSON:
			if ext, isExt := arr.(array.ExtensionArray); isExt {
				sc.str, ok = ext.Storage().(*array.String)
			}
		case schema.Timestamp:
			sc.ts, ok = arr.(*array.Timestamp)
		case schema.Double:
			sc.f64, ok = arr.(*array.Float64)
		case schema.Bytes:
			sc.bin, ok = arr.(*array.Binary)
		}
		if !ok {
			return nil, fmt.Errorf("%s.%s: unexpected Arrow array %T", t.Name, c.Name, arr)
		}
	}
	if seq != nil {
		s.vals[width-1] = seq
	}
	return s, nil
}

func (s *recordSource) Next() bool {
	s.row++
	return s.row < s.n
}

func (s *recordSource) Values() ([]any, error) {
	r := s.row
	for i := range s.cols {
		c := &s.cols[i]
		if c.nulls && c.arr.IsNull(r) {
			s.vals[i] = nil
			continue
		}
		switch c.kind {
		case schema.String:
			c.text.s = s.clean.text(c.str.Value(r))
			s.vals[i] = &c.text
		case schema.JSON:
			s.vals[i] = s.clean.json(c.str.Value(r))
		case schema.Timestamp:
			c.time.us = int64(c.ts.Value(r))
			s.vals[i] = &c.time
		case schema.Double:
			c.float.f = c.f64.Value(r)
			s.vals[i] = &c.float
		case schema.Bytes:
			c.bytes.b = c.bin.Value(r)
			s.vals[i] = &c.bytes
		}
	}
	return s.vals, nil
}

func (s *recordSource) Err() error { return s.err }

// The cells implement pgx's valuer interfaces on pointer receivers, which
// pgx's codecs for text, timestamptz, float8, bytea and int8 take without
// reflection or allocation.

type textCell struct{ s string }

func (c *textCell) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: c.s, Valid: true}, nil
}

type timestamptzCell struct{ us int64 }

func (c *timestamptzCell) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: time.UnixMicro(c.us).UTC(), Valid: true}, nil
}

type float64Cell struct{ f float64 }

func (c *float64Cell) Float64Value() (pgtype.Float8, error) {
	return pgtype.Float8{Float64: c.f, Valid: true}, nil
}

// emptyBytes stands for a zero-length value: pgx sends a nil slice as NULL.
var emptyBytes = []byte{}

type bytesCell struct{ b []byte }

func (c *bytesCell) BytesValue() ([]byte, error) {
	if c.b == nil {
		return emptyBytes, nil
	}
	return c.b, nil
}

type int64Cell struct{ n int64 }

func (c *int64Cell) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: c.n, Valid: true}, nil
}
