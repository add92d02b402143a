package e2etest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/big"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/load/parquet"
)

// Row is a profile as read back from a sink, in comparable Go values.
type Row struct {
	ID                                                  string
	Email, PhoneNumber, ExternalID, FirstName, LastName *string
	Organization, Locale, Title, Image                  *string
	Address1, Address2, City, Country, Region, Zip      *string
	Timezone, IP                                        *string
	Created, Updated                                    time.Time
	LastEventDate                                       *time.Time
	Latitude, Longitude                                 *float64
	Properties                                          any
	RunID                                               string
}

func (r Row) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// ExpectedRow is what the simulator's profile must become.
func ExpectedRow(p klaviyosim.Profile) Row {
	text := func(x klaviyosim.Text) *string {
		if !x.Valid || x.Absent {
			return nil
		}
		v := x.Value
		return &v
	}
	coord := func(c klaviyosim.Coord) *float64 {
		if c.Form == klaviyosim.CoordString || c.Form == klaviyosim.CoordNumber {
			v := c.Value
			return &v
		}
		return nil
	}
	l := p.Location
	r := Row{
		ID:    p.ID,
		Email: text(p.Email), PhoneNumber: text(p.PhoneNumber), ExternalID: text(p.ExternalID),
		FirstName: text(p.FirstName), LastName: text(p.LastName), Organization: text(p.Organization),
		Locale: text(p.Locale), Title: text(p.Title), Image: text(p.Image),
		Address1: text(l.Address1), Address2: text(l.Address2), City: text(l.City), Country: text(l.Country),
		Region: text(l.Region), Zip: text(l.Zip), Timezone: text(l.Timezone), IP: text(l.IP),
		Created:   p.Created.UTC().Truncate(time.Microsecond),
		Updated:   p.Updated.UTC().Truncate(time.Microsecond),
		Latitude:  coord(l.Latitude),
		Longitude: coord(l.Longitude),
	}
	if !p.LastEventDate.IsZero() {
		t := p.LastEventDate.UTC().Truncate(time.Microsecond)
		r.LastEventDate = &t
	}
	if len(p.Properties) > 0 && string(p.Properties) != "null" {
		r.Properties = DecodeJSON(p.Properties)
	}
	return r
}

// DecodeJSON decodes JSON for comparison by value, numbers exactly.
func DecodeJSON(b []byte) any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return fmt.Sprintf("invalid JSON %q: %v", b, err)
	}
	return canonicalNumbers(v)
}

// canonicalNumbers replaces JSON numbers by their exact rational value, so
// 1.6e-08 equals 0.000000016 (jsonb's spelling) and 9007199254740993 stays
// exact.
func canonicalNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		r, ok := new(big.Rat).SetString(string(x))
		if !ok {
			return "bad number " + string(x)
		}
		return "num:" + r.RatString()
	case map[string]any:
		for k, e := range x {
			x[k] = canonicalNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = canonicalNumbers(e)
		}
	}
	return v
}

// Tally is how an output compares with the data set.
type Tally struct {
	Want, Got  int
	Lost       int // expected profiles missing
	Duplicates int // extra rows of profiles present more than once
	Differ     int // profiles present once with a value that differs
	Unexpected int // rows of profiles not in the data set
	examples   []string
}

// Exact reports whether the output is the data set, nothing more or less.
func (tl Tally) Exact() bool {
	return tl.Lost == 0 && tl.Duplicates == 0 && tl.Differ == 0 && tl.Unexpected == 0 && tl.Got == tl.Want
}

func (tl Tally) String() string {
	return fmt.Sprintf("%d rows for %d profiles: %d lost, %d duplicate rows, %d differ, %d unexpected; %s",
		tl.Got, tl.Want, tl.Lost, tl.Duplicates, tl.Differ, tl.Unexpected, strings.Join(tl.examples, "; "))
}

func (tl *Tally) example(format string, args ...any) {
	if len(tl.examples) < 4 {
		tl.examples = append(tl.examples, fmt.Sprintf(format, args...))
	}
}

// Compare compares got with want. With subset, profiles of want
// that are missing are not counted as lost (an interrupted run's prefix).
func Compare(got []Row, want []klaviyosim.Profile, subset bool) Tally {
	tl := Tally{Want: len(want), Got: len(got)}
	byID := make(map[string][]Row, len(got))
	for _, r := range got {
		byID[r.ID] = append(byID[r.ID], r)
	}
	for _, p := range want {
		rs, ok := byID[p.ID]
		delete(byID, p.ID)
		if !ok {
			if !subset {
				tl.Lost++
				tl.example("profile %s lost", p.ID)
			}
			continue
		}
		if len(rs) > 1 {
			tl.Duplicates += len(rs) - 1
			tl.example("profile %s present %d times", p.ID, len(rs))
		}
		exp := ExpectedRow(p)
		exp.RunID = rs[0].RunID
		if !reflect.DeepEqual(rs[0], exp) {
			tl.Differ++
			tl.example("profile %s differs:\n got  %v\n want %v", p.ID, rs[0], exp)
		}
	}
	for id, rs := range byID {
		tl.Unexpected += len(rs)
		tl.example("unexpected profile %s (%d rows)", id, len(rs))
	}
	if subset {
		tl.Want = tl.Got - tl.Unexpected - tl.Duplicates
	}
	return tl
}

// CompareProfiles fails t unless got holds every expected profile exactly
// once with equal values, and nothing else.
func CompareProfiles(t testing.TB, got []Row, want []klaviyosim.Profile) {
	t.Helper()
	if tl := Compare(got, want, false); !tl.Exact() {
		t.Errorf("output is not the data set: %v", tl)
	}
}

// ReadParquetProfiles reads every committed profiles file under dir (the
// files _state.json lists) with arrow-go's Parquet reader.
func ReadParquetProfiles(t testing.TB, dir string) []Row {
	t.Helper()
	var out []Row
	EachParquetRecord(t, dir, "profiles", func(rec arrow.RecordBatch) { out = append(out, rowsOf(t, rec)...) })
	return out
}

// LiveFiles lists the committed files of one table of a Parquet output.
func LiveFiles(t testing.TB, dir, table string) []string {
	t.Helper()
	files, err := parquet.LiveFiles(dir)
	if err != nil {
		t.Fatalf("read %s/_state.json: %v", dir, err)
	}
	return files[table]
}

// EachParquetRecord calls fn for every record batch of the committed files
// of table.
func EachParquetRecord(t testing.TB, dir, table string, fn func(arrow.RecordBatch)) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, path := range LiveFiles(t, dir, table) {
		f, err := file.OpenParquetFile(path, false)
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		fr, err := pqarrow.NewFileReader(f, pqarrow.ArrowReadProperties{BatchSize: 8192}, mem)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		tr := array.NewTableReader(tbl, 8192)
		for tr.Next() {
			fn(tr.RecordBatch())
		}
		tr.Release()
		tbl.Release()
		f.Close()
	}
}

// NewColumns wraps rec for typed access by column name.
func NewColumns(t testing.TB, rec arrow.RecordBatch) Columns { return Columns{t: t, rec: rec} }

// Columns gives typed access to a record batch's columns by name; a missing
// column or an unexpected type fails the test.
type Columns struct {
	t   testing.TB
	rec arrow.RecordBatch
}

func (c Columns) col(name string) arrow.Array {
	idx := c.rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		c.t.Fatalf("column %s missing", name)
	}
	a := c.rec.Column(idx[0])
	if ext, ok := a.(array.ExtensionArray); ok {
		a = ext.Storage()
	}
	return a
}

// Bytes is value i of a string or binary column, nil when null.
func (c Columns) Bytes(name string, i int) []byte {
	a := c.col(name)
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.String:
		return []byte(a.Value(i))
	case *array.Binary:
		return bytes.Clone(a.Value(i))
	}
	c.t.Fatalf("column %s is %T, want a string", name, a)
	return nil
}

// Str is value i of a string or binary column, nil when null.
func (c Columns) Str(name string, i int) *string {
	if c.col(name).IsNull(i) {
		return nil
	}
	v := string(c.Bytes(name, i))
	return &v
}

// Time is value i of a timestamp column in UTC, nil when null.
func (c Columns) Time(name string, i int) *time.Time {
	a := c.col(name).(*array.Timestamp)
	if a.IsNull(i) {
		return nil
	}
	v := a.Value(i).ToTime(arrow.Microsecond).UTC()
	return &v
}

// Float is value i of a float64 column, nil when null.
func (c Columns) Float(name string, i int) *float64 {
	a := c.col(name).(*array.Float64)
	if a.IsNull(i) {
		return nil
	}
	v := a.Value(i)
	return &v
}

func rowsOf(t testing.TB, rec arrow.RecordBatch) []Row {
	c := NewColumns(t, rec)
	out := make([]Row, rec.NumRows())
	for i := range out {
		r := Row{
			ID:    *c.Str("id", i),
			Email: c.Str("email", i), PhoneNumber: c.Str("phone_number", i), ExternalID: c.Str("external_id", i),
			FirstName: c.Str("first_name", i), LastName: c.Str("last_name", i), Organization: c.Str("organization", i),
			Locale: c.Str("locale", i), Title: c.Str("title", i), Image: c.Str("image", i),
			Address1: c.Str("location_address1", i), Address2: c.Str("location_address2", i),
			City: c.Str("location_city", i), Country: c.Str("location_country", i),
			Region: c.Str("location_region", i), Zip: c.Str("location_zip", i),
			Timezone: c.Str("location_timezone", i), IP: c.Str("location_ip", i),
			LastEventDate: c.Time("last_event_date", i),
			Latitude:      c.Float("location_latitude", i),
			Longitude:     c.Float("location_longitude", i),
			RunID:         *c.Str("_run_id", i),
		}
		if v := c.Time("created", i); v != nil {
			r.Created = *v
		}
		if v := c.Time("updated", i); v != nil {
			r.Updated = *v
		}
		if p := c.Bytes("properties", i); p != nil {
			r.Properties = DecodeJSON(p)
		}
		out[i] = r
	}
	return out
}

// AssertNoDebris checks that dir holds nothing but _state.json and Parquet
// files in the table folders, each listed in _state.json.
func AssertNoDebris(t testing.TB, dir string) {
	t.Helper()
	debris, err := Debris(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range debris {
		t.Errorf("debris: %s", d)
	}
}

// Debris lists what a Parquet output folder holds besides _state.json and
// the Parquet files it lists ("folder/" for an unexpected folder), and the
// listed files that are missing ("missing: path"), sorted.
func Debris(dir string) ([]string, error) {
	files, err := parquet.LiveFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("_state.json: %w", err)
	}
	listed := map[string]bool{}
	for _, paths := range files {
		for _, p := range paths {
			listed[p] = true
		}
	}
	var debris []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			switch rel {
			case ".", "profiles", "profile_relationships", "profile_rejects":
				return nil
			}
			debris = append(debris, rel+"/")
			return fs.SkipDir
		}
		if rel == "_state.json" {
			return nil
		}
		if !listed[path] || !strings.HasSuffix(rel, ".parquet") {
			debris = append(debris, rel)
		}
		delete(listed, path)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for p := range listed {
		debris = append(debris, "missing: "+p)
	}
	sort.Strings(debris)
	return debris, nil
}

// WaitFor polls cond every 50 ms until it holds, and fails the test when
// timeout passes first: for the tests that act on a running program once
// it has reached some point.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ReadPostgresProfiles reads the profiles table of schemaName (none when
// it does not exist yet).
func ReadPostgresProfiles(t testing.TB, url, schemaName string) []Row {
	t.Helper()
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	q := `SELECT id, email, phone_number, external_id, first_name, last_name, organization, locale, title, image,
	             location_address1, location_address2, location_city, location_country, location_region, location_zip,
	             location_timezone, location_ip, created, updated, last_event_date,
	             location_latitude, location_longitude, properties::text, _run_id
	      FROM ` + pgx.Identifier{schemaName, "profiles"}.Sanitize()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		t.Fatal(err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var created, updated *time.Time
		var props *string
		if err := rows.Scan(&r.ID, &r.Email, &r.PhoneNumber, &r.ExternalID, &r.FirstName, &r.LastName, &r.Organization,
			&r.Locale, &r.Title, &r.Image, &r.Address1, &r.Address2, &r.City, &r.Country, &r.Region, &r.Zip,
			&r.Timezone, &r.IP, &created, &updated, &r.LastEventDate,
			&r.Latitude, &r.Longitude, &props, &r.RunID); err != nil {
			t.Fatal(err)
		}
		if created != nil {
			r.Created = created.UTC()
		}
		if updated != nil {
			r.Updated = updated.UTC()
		}
		if r.LastEventDate != nil {
			u := r.LastEventDate.UTC()
			r.LastEventDate = &u
		}
		if props != nil {
			r.Properties = DecodeJSON([]byte(*props))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
