package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// copyStream is an io.Reader of the binary COPY stream (PGCOPY) of one
// Arrow record, encoded row by row straight from the Arrow buffers into a
// reused buffer: no value is boxed, and no type or encode plan is looked up
// per value as pgx's CopyFromSource path does. The wire formats are
// PostgreSQL's binary send/recv formats of the schema's column types:
// text and bytea as their bytes, jsonb as version byte 1 and the JSON text,
// timestamptz as int64 microseconds since 2000-01-01 UTC, float8 as IEEE
// 754 bits and the staging tables' _seq as int8, all big-endian.
//
// Text and JSON pass through the sanitizer as with every other path into
// PostgreSQL, but a column whose whole data buffer holds no NUL, no
// \u0000 escape and only valid UTF-8 starting and ending every value on a
// character boundary is known clean without looking at its values one by
// one.
//
// pgconn reads it from a goroutine of its own, which can still be inside
// Read when CopyFrom returns after a server error; close waits for that
// Read and makes later ones fail, so the record and the sanitizer's count
// are never touched after the COPY has ended.
type copyStream struct {
	mu     sync.Mutex
	closed bool

	n, row int
	cols   []streamColumn
	seq    int64 // appended to every row as _seq when withSeq
	with   bool
	clean  *sanitizer

	buf     []byte
	off     int
	started bool
	ended   bool
}

// streamColumn is one column's Arrow buffers, read without going through
// the arrow.Array interface per value.
type streamColumn struct {
	kind     schema.Kind
	valid    []byte // validity bitmap, nil when the column holds no NULL
	validOff int

	// String, JSON and Bytes: value i is data[offsets[i]-base : offsets[i+1]-base].
	offsets []int32
	base    int32
	data    []byte
	str     *array.String // for the per-value sanitizer when not clean
	clean   bool          // no value needs the sanitizer

	ts  []arrow.Timestamp
	f64 []float64
}

// copyBufSize is how much the stream encodes ahead of the reader: pgconn
// reads into a 64 KiB buffer.
const copyBufSize = 64 << 10

// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 UTC.
const pgEpochMicros = 946_684_800_000_000

var errStreamClosed = errors.New("copy stream closed")

// pgMicros is PostgreSQL's binary timestamptz for v microseconds since the
// Unix epoch. Values so far back that the shift to PostgreSQL's epoch would
// overflow, or land on -infinity, become a value PostgreSQL refuses (timestamp
// out of range, 22008), as every other value beyond its range is: pgx
// wrapped them around into a date in the year 294247 or into ±infinity.
func pgMicros(v int64) int64 {
	if v <= math.MinInt64+pgEpochMicros {
		return math.MinInt64 + 1
	}
	return v - pgEpochMicros
}

// newCopyStream reads rec, already checked against t by checkRecord. With
// withSeq, seq is appended to every row as the staging tables' _seq.
func newCopyStream(t *schema.Table, rec arrow.RecordBatch, withSeq bool, seq int64, clean *sanitizer) (*copyStream, error) {
	if rec.NumRows() == 0 {
		return nil, fmt.Errorf("%s: no rows to copy", t.Name)
	}
	s := &copyStream{
		n:     int(rec.NumRows()),
		cols:  make([]streamColumn, len(t.Columns)),
		seq:   seq,
		with:  withSeq,
		clean: clean,
	}
	for i, c := range t.Columns {
		arr := rec.Column(i)
		sc := &s.cols[i]
		sc.kind = c.Kind
		if arr.NullN() > 0 {
			sc.valid = arr.NullBitmapBytes()
			sc.validOff = arr.Data().Offset()
		}
		var ok bool
		switch c.Kind {
		case schema.String, schema.JSON:
			var str *array.String
			if c.Kind == schema.JSON {
				if ext, isExt := arr.(array.ExtensionArray); isExt {
					str, ok = ext.Storage().(*array.String)
				}
			} else {
				str, ok = arr.(*array.String)
			}
			if ok {
				sc.str = str
				sc.offsets = str.ValueOffsets()
				sc.base = sc.offsets[0]
				sc.data = str.ValueBytes()
				sc.clean = cleanText(sc.data, sc.offsets, c.Kind == schema.JSON)
			}
		case schema.Bytes:
			var bin *array.Binary
			if bin, ok = arr.(*array.Binary); ok {
				sc.offsets = bin.ValueOffsets()
				sc.base = sc.offsets[0]
				sc.data = bin.ValueBytes()
			}
		case schema.Timestamp:
			var ts *array.Timestamp
			if ts, ok = arr.(*array.Timestamp); ok {
				sc.ts = ts.Values()
			}
		case schema.Double:
			var f *array.Float64
			if f, ok = arr.(*array.Float64); ok {
				sc.f64 = f.Float64Values()
			}
		}
		if !ok {
			return nil, fmt.Errorf("%s.%s: unexpected Arrow array %T", t.Name, c.Name, arr)
		}
	}
	return s, nil
}

// cleanText reports whether every value of a string column is storable
// as it is (see sanitizer): data, the bytes of every value, holds no NUL
// (and, for JSON, no \u0000 escape), is valid UTF-8, and no value starts or
// ends inside a character — a valid whole cut at character boundaries
// gives valid pieces. It may say no for a column that is clean (garbage
// under a NULL, or \u0000 spanning two values); the values are then
// checked one by one.
func cleanText(data []byte, offsets []int32, json bool) bool {
	if bytes.IndexByte(data, 0) >= 0 || (json && bytes.Contains(data, nulEscape)) || !utf8.Valid(data) {
		return false
	}
	for i := 1; i < len(offsets)-1; i++ {
		if o := int(offsets[i] - offsets[0]); o < len(data) && !utf8.RuneStart(data[o]) {
			return false
		}
	}
	return true
}

var nulEscape = []byte(`\u0000`)

// Read implements io.Reader.
func (s *copyStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errStreamClosed
	}
	if len(s.buf)-s.off < len(p) && !s.ended {
		// Top the unread tail (part of a row) up to a whole read: a short
		// read would go out as a short CopyData message of its own.
		tail := copy(s.buf, s.buf[s.off:])
		s.buf, s.off = s.buf[:tail], 0
		s.fill(max(len(p), copyBufSize))
	}
	if s.off == len(s.buf) {
		return 0, io.EOF
	}
	n := copy(p, s.buf[s.off:])
	s.off += n
	return n, nil
}

// close makes further Reads fail, waiting for one in progress.
func (s *copyStream) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// fill encodes rows onto the buffer until it holds at least size bytes or
// the stream has ended.
func (s *copyStream) fill(size int) {
	buf := s.buf
	if !s.started {
		s.started = true
		buf = append(buf, "PGCOPY\n\xff\r\n\x00"...)
		buf = binary.BigEndian.AppendUint32(buf, 0) // flags
		buf = binary.BigEndian.AppendUint32(buf, 0) // header extension length
	}
	fields := uint16(len(s.cols))
	if s.with {
		fields++
	}
	for len(buf) < size && s.row < s.n {
		buf = s.appendRow(buf, s.row, fields)
		s.row++
	}
	if s.row == s.n {
		buf = binary.BigEndian.AppendUint16(buf, 0xffff) // trailer: -1
		s.ended = true
	}
	s.buf = buf
}

func (s *copyStream) appendRow(buf []byte, r int, fields uint16) []byte {
	be := binary.BigEndian
	buf = be.AppendUint16(buf, fields)
	for i := range s.cols {
		c := &s.cols[i]
		if c.valid != nil {
			j := c.validOff + r
			if c.valid[j>>3]&(1<<(j&7)) == 0 {
				buf = be.AppendUint32(buf, 0xffffffff) // NULL: length -1
				continue
			}
		}
		switch c.kind {
		case schema.String:
			if c.clean {
				v := c.data[c.offsets[r]-c.base : c.offsets[r+1]-c.base]
				buf = be.AppendUint32(buf, uint32(len(v)))
				buf = append(buf, v...)
			} else {
				v := s.clean.text(c.str.Value(r))
				buf = be.AppendUint32(buf, uint32(len(v)))
				buf = append(buf, v...)
			}
		case schema.JSON:
			if c.clean {
				v := c.data[c.offsets[r]-c.base : c.offsets[r+1]-c.base]
				buf = be.AppendUint32(buf, uint32(len(v)+1))
				buf = append(buf, 1) // jsonb binary format version
				buf = append(buf, v...)
			} else {
				v := s.clean.json(c.str.Value(r))
				buf = be.AppendUint32(buf, uint32(len(v)+1))
				buf = append(buf, 1)
				buf = append(buf, v...)
			}
		case schema.Bytes:
			v := c.data[c.offsets[r]-c.base : c.offsets[r+1]-c.base]
			buf = be.AppendUint32(buf, uint32(len(v)))
			buf = append(buf, v...)
		case schema.Timestamp:
			buf = be.AppendUint32(buf, 8)
			buf = be.AppendUint64(buf, uint64(pgMicros(int64(c.ts[r]))))
		case schema.Double:
			buf = be.AppendUint32(buf, 8)
			buf = be.AppendUint64(buf, math.Float64bits(c.f64[r]))
		}
	}
	if s.with {
		buf = be.AppendUint32(buf, 8)
		buf = be.AppendUint64(buf, uint64(s.seq))
	}
	return buf
}
