package postgres

import (
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// allKinds has one nullable column of every kind, so that NULLs of each
// go through the encoder too.
var allKinds = &schema.Table{
	Name: "all_kinds",
	Columns: []schema.Column{
		{Name: "s", Kind: schema.String, Nullable: true},
		{Name: "j", Kind: schema.JSON, Nullable: true},
		{Name: "t", Kind: schema.Timestamp, Nullable: true},
		{Name: "d", Kind: schema.Double, Nullable: true},
		{Name: "b", Kind: schema.Bytes, Nullable: true},
	},
}

// us is a timestamp from microseconds since the Unix epoch.
func us(n int64) time.Time { return time.UnixMicro(n).UTC() }

// allKindsRows are the values the encoder must carry exactly, or change
// exactly as the sanitizer does; wantText is what PostgreSQL then holds,
// column by column, as its text output (NULL for SQL NULL).
var allKindsRows = []struct {
	r        row
	wantText []string // s, j, t, d, b; "NULL" for SQL NULL
}{
	{row{}, []string{"NULL", "NULL", "NULL", "NULL", "NULL"}},
	{row{"s": "", "j": `""`, "t": us(0), "d": 0.0, "b": []byte{}},
		[]string{"", `""`, "1970-01-01 00:00:00+00", "0", `\x`}},
	{row{"s": "Zoë 日本 🙂", "j": `{"b": [1, 2.5, null], "a": {"c": true}}`, "t": us(946_684_800_000_000), "d": math.Copysign(0, -1), "b": []byte{0, 0xff, 0xfe}},
		[]string{"Zoë 日本 🙂", `{"a": {"c": true}, "b": [1, 2.5, null]}`, "2000-01-01 00:00:00+00", "-0", `\x00fffe`}},
	{row{"s": "nul\x00inside", "j": `{"a": "x\u0000y", "k": "\\u0000 stays"}`, "t": us(-1), "d": math.NaN()},
		[]string{"nul\uFFFDinside", "{\"a\": \"x\uFFFDy\", \"k\": " + `"\\u0000 stays"}`, "1969-12-31 23:59:59.999999+00", "NaN", "NULL"}},
	{row{"s": "bad\xffutf8", "j": "{\"a\": \"\xff\x00\"}", "t": us(253_402_300_799_999_999), "d": math.Inf(1)},
		[]string{"bad\uFFFDutf8", "{\"a\": \"\uFFFD\uFFFD\"}", "9999-12-31 23:59:59.999999+00", "Infinity", "NULL"}},
	// Each of these two is invalid alone, though together they spell é:
	// the column scan must not take the whole for its parts.
	{row{"s": "\xc3", "d": math.Inf(-1)}, []string{"\uFFFD", "NULL", "NULL", "-Infinity", "NULL"}},
	{row{"s": "\xa9", "d": math.MaxFloat64}, []string{"\uFFFD", "NULL", "NULL", "1.7976931348623157e+308", "NULL"}},
	{row{"t": us(-62_135_596_800_000_000), "d": math.SmallestNonzeroFloat64}, // 0001-01-01
		[]string{"NULL", "NULL", "0001-01-01 00:00:00+00", "5e-324", "NULL"}},
	{row{"t": us(-210_866_803_200_000_000)}, // 4714-11-24 BC, PostgreSQL's first day
		[]string{"NULL", "NULL", "4714-11-24 00:00:00+00 BC", "NULL", "NULL"}},
	{row{"t": us(math.MaxInt64)}, // PostgreSQL's range ends 30 years later
		[]string{"NULL", "NULL", "294247-01-10 04:00:54.775807+00", "NULL", "NULL"}},
	{row{"s": strings.Repeat("long ", 30_000), "j": `"` + strings.Repeat("é", 40_000) + `"`, "b": []byte(strings.Repeat("\x00", 70_000))}, nil},
}

// TestCopyStreamRoundTrip COPYs records holding every kind of value
// through copyStream into PostgreSQL, and the same records through pgx's
// own encoder (recordSource) into a twin table: both must store the same
// rows, as PostgreSQL prints them, and count the same sanitised values.
func TestCopyStreamRoundTrip(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	conn := connect(t, url)
	ctx := t.Context()
	if _, err := conn.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
		t.Fatal(err)
	}

	var rows []row
	for _, r := range allKindsRows {
		rows = append(rows, r.r)
	}
	full := record(t, mem, allKinds, rows...)
	defer full.Release()
	// Sliced records start inside their buffers and validity bitmaps.
	tail := full.NewSlice(3, full.NumRows())
	defer tail.Release()
	short := rows[:len(rows)-1]
	many := record(t, mem, allKinds, repeatRows(short, 400)...) // several 64 KiB reads
	defer many.Release()

	tests := []struct {
		name   string
		rec    arrow.RecordBatch
		seq    bool
		skip   int // rows of allKindsRows left out in front
		period int // rows of allKindsRows repeated
	}{
		{"record", full, false, 0, len(rows)},
		{"record with _seq", full, true, 0, len(rows)},
		{"sliced record", tail, false, 3, len(rows)},
		{"many rows", many, true, 0, len(short)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cols := allKinds.Names()
			ddl := "(ord bigint GENERATED ALWAYS AS IDENTITY, s text, j jsonb, t timestamptz, d double precision, b bytea, _seq bigint)"
			for _, tbl := range []string{"via_stream", "via_pgx"} {
				if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+tbl+"; CREATE TABLE "+tbl+" "+ddl); err != nil {
					t.Fatal(err)
				}
			}
			if tt.seq {
				cols = append(cols, seqColumn)
			}
			const seq = 1<<40 + 7
			var zs, zp sanitizer
			stream, err := newCopyStream(allKinds, tt.rec, tt.seq, seq, &zs)
			if err != nil {
				t.Fatal(err)
			}
			tag, err := conn.PgConn().CopyFrom(ctx, stream, newCopyStmt(pgx.Identifier{"via_stream"}, cols).sql)
			stream.close()
			if err != nil {
				t.Fatalf("copy through copyStream: %v", err)
			}
			if tag.RowsAffected() != tt.rec.NumRows() {
				t.Fatalf("copied %d rows of %d", tag.RowsAffected(), tt.rec.NumRows())
			}
			var cell *int64Cell
			if tt.seq {
				cell = &int64Cell{n: seq}
			}
			src, err := newRecordSource(allKinds, tt.rec, cell, &zp)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{"via_pgx"}, cols, src); err != nil {
				t.Fatalf("copy through pgx: %v", err)
			}
			if zs.replaced != zp.replaced {
				t.Errorf("values sanitised: %d, pgx path %d", zs.replaced, zp.replaced)
			}
			// EXCEPT compares NULLs, NaNs and jsonb as equal when they are.
			diff := `SELECT count(*) FROM (
				(SELECT ord, s, j, t, d::text, b, _seq FROM via_stream EXCEPT SELECT ord, s, j, t, d::text, b, _seq FROM via_pgx)
				UNION ALL
				(SELECT ord, s, j, t, d::text, b, _seq FROM via_pgx EXCEPT SELECT ord, s, j, t, d::text, b, _seq FROM via_stream)) d`
			if n := count(t, conn, diff); n != 0 {
				t.Errorf("%d rows differ between copyStream and pgx", n)
			}
			if tt.seq {
				if n := count(t, conn, `SELECT count(*) FROM via_stream WHERE _seq IS DISTINCT FROM $1`, int64(seq)); n != 0 {
					t.Errorf("%d rows without _seq %d", n, int64(seq))
				}
			}
			texts, err := pgx.CollectRows(must(conn.Query(ctx, `SELECT ARRAY[coalesce(s, 'NULL'), coalesce(j::text, 'NULL'), coalesce(t::text, 'NULL'),
				coalesce(d::text, 'NULL'), coalesce(b::text, 'NULL')] FROM via_stream ORDER BY ord`)), pgx.RowTo[[]string])
			if err != nil {
				t.Fatal(err)
			}
			if len(texts) != int(tt.rec.NumRows()) {
				t.Fatalf("read %d rows back, want %d", len(texts), tt.rec.NumRows())
			}
			for i, gotRow := range texts {
				want := allKindsRows[(i+tt.skip)%tt.period]
				if want.wantText == nil {
					continue
				}
				for c, w := range want.wantText {
					if gotRow[c] != w {
						t.Errorf("row %d column %s: got %q, want %q", i+tt.skip, allKinds.Columns[c].Name, gotRow[c], w)
					}
				}
			}
		})
	}

	// The long values came back byte for byte.
	var long, jlong string
	var raw []byte
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS via_stream; CREATE TABLE via_stream (s text, j jsonb, t timestamptz, d double precision, b bytea)"); err != nil {
		t.Fatal(err)
	}
	var z sanitizer
	stream, err := newCopyStream(allKinds, full, false, 0, &z)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.PgConn().CopyFrom(ctx, stream, newCopyStmt(pgx.Identifier{"via_stream"}, allKinds.Names()).sql)
	stream.close()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT s, j #>> '{}', b FROM via_stream WHERE length(s) > 1000`).Scan(&long, &jlong, &raw); err != nil {
		t.Fatal(err)
	}
	if long != strings.Repeat("long ", 30_000) || jlong != strings.Repeat("é", 40_000) || len(raw) != 70_000 {
		t.Errorf("long values changed: %d, %d, %d bytes", len(long), len(jlong), len(raw))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func repeatRows(rows []row, n int) []row {
	var out []row
	for range n {
		out = append(out, rows...)
	}
	return out
}

// TestCopyStreamRefusesOutOfRange: a timestamp PostgreSQL cannot hold is
// refused by the server, not changed on the way (pgx's encoder wrapped the
// earliest ones around into the far future or ±infinity).
func TestCopyStreamRefusesOutOfRange(t *testing.T) {
	url := pgtest.NewDatabase(t)
	mem := newAllocator(t)
	conn := connect(t, url)
	if _, err := conn.Exec(t.Context(), `CREATE TABLE x (s text, j jsonb, t timestamptz, d double precision, b bytea)`); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{
		-210_866_803_200_000_001, // a microsecond before 4714-11-24 BC
		math.MinInt64,
		math.MinInt64 + pgEpochMicros,     // would be -infinity
		math.MinInt64 + pgEpochMicros - 1, // would wrap to +infinity
		math.MinInt64 + pgEpochMicros + 1,
	} {
		rec := record(t, mem, allKinds, row{"t": us(v)})
		var z sanitizer
		stream, err := newCopyStream(allKinds, rec, false, 0, &z)
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.PgConn().CopyFrom(t.Context(), stream, newCopyStmt(pgx.Identifier{"x"}, allKinds.Names()).sql)
		stream.close()
		rec.Release()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "22008" {
			t.Errorf("timestamp %d µs: %v, want SQLSTATE 22008", v, err)
		}
	}
}

func TestCopyStreamClosed(t *testing.T) {
	mem := newAllocator(t)
	rec := record(t, mem, allKinds, row{"s": "x"})
	defer rec.Release()
	var z sanitizer
	stream, err := newCopyStream(allKinds, rec, false, 0, &z)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	if n, err := stream.Read(p); n != 4 || err != nil || string(p) != "PGCO" {
		t.Fatalf("first read: %d %v %q", n, err, p)
	}
	stream.close()
	if _, err := stream.Read(p); !errors.Is(err, errStreamClosed) {
		t.Errorf("read after close: %v, want errStreamClosed", err)
	}
	// A whole stream ends with the trailer and io.EOF.
	stream, _ = newCopyStream(allKinds, rec, false, 0, &z)
	all, err := io.ReadAll(stream)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\xff\xff"; !strings.HasSuffix(string(all), want) {
		t.Errorf("stream ends %q, want the trailer", all[len(all)-4:])
	}
}

// TestCopyStreamReadsWhole: every read but the last fills the reader's
// buffer, so that no short CopyData message goes out between full ones.
func TestCopyStreamReadsWhole(t *testing.T) {
	mem := newAllocator(t)
	var rows []row
	for i := range 3000 {
		rows = append(rows, row{"s": strings.Repeat("x", i%300), "j": `{"a": 1}`, "t": us(int64(i)), "d": float64(i)})
	}
	rec := record(t, mem, allKinds, rows...)
	defer rec.Release()
	var z sanitizer
	stream, err := newCopyStream(allKinds, rec, true, 1, &z)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 65531) // what pgconn reads into
	var sizes []int
	for {
		n, err := stream.Read(p)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, n)
	}
	if len(sizes) < 3 {
		t.Fatalf("%d reads, want several", len(sizes))
	}
	for i, n := range sizes[:len(sizes)-1] {
		if n != len(p) {
			t.Errorf("read %d of %d returned %d bytes, want %d", i, len(sizes), n, len(p))
		}
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		json   bool
		want   bool
	}{
		{"ascii", []string{"a", "", "bc"}, false, true},
		{"multibyte", []string{"é", "日本", "🙂"}, false, true},
		{"NUL", []string{"a", "b\x00"}, false, false},
		{"invalid", []string{"a\xff"}, false, false},
		{"character split across values", []string{"\xc3", "\xa9"}, false, false},
		{"4-byte character split", []string{"\xf0\x9f", "\x99\x82"}, false, false},
		{"NUL escape in JSON", []string{`"\u0000"`}, true, false},
		{"NUL escape in text is text", []string{`\u0000`}, false, true},
		{"escaped backslash: conservative", []string{`"\\u0000"`}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, offsets := concat(tt.values)
			if got := cleanText(data, offsets, tt.json); got != tt.want {
				t.Errorf("cleanText = %v, want %v", got, tt.want)
			}
		})
	}
}

func concat(values []string) ([]byte, []int32) {
	var data []byte
	offsets := []int32{0}
	for _, v := range values {
		data = append(data, v...)
		offsets = append(offsets, int32(len(data)))
	}
	return data, offsets
}

// FuzzCleanText: whenever cleanText calls a column clean, the sanitizer
// would have left every one of its values alone.
func FuzzCleanText(f *testing.F) {
	f.Add([]byte("a\xc3\xa9b"), uint8(1), uint8(2), false)
	f.Add([]byte(`"\u0000"`), uint8(3), uint8(5), true)
	f.Add([]byte("\xf0\x9f\x99\x82"), uint8(1), uint8(3), false)
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint8, json bool) {
		a, b := min(int(cut1), len(data)), min(int(cut2), len(data))
		if a > b {
			a, b = b, a
		}
		offsets := []int32{0, int32(a), int32(b), int32(len(data))}
		if !cleanText(data, offsets, json) {
			return
		}
		var z sanitizer
		for i := range 3 {
			v := string(data[offsets[i]:offsets[i+1]])
			var out string
			if json {
				out = z.json(v)
			} else {
				out = z.text(v)
			}
			if out != v || !utf8.ValidString(v) {
				t.Fatalf("value %q called clean, but the sanitizer makes it %q", v, out)
			}
		}
	})
}
