package e2etest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/big"
	"os"
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
)

// Row is a profile as read back from a sink, in comparable Go values.
type Row struct {
	ID                          string
	Email, FirstName, City, Zip *string
	Created, Updated            time.Time
	LastEventDate               *time.Time
	Latitude, Longitude         *float64
	Properties                  any
	RunID                       string
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
	r := Row{
		ID:        p.ID,
		Email:     text(p.Email),
		FirstName: text(p.FirstName),
		City:      text(p.Location.City),
		Zip:       text(p.Location.Zip),
		Created:   p.Created.UTC().Truncate(time.Microsecond),
		Updated:   p.Updated.UTC().Truncate(time.Microsecond),
		Latitude:  coord(p.Location.Latitude),
		Longitude: coord(p.Location.Longitude),
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

// CompareProfiles checks that got holds every expected profile exactly once
// with equal values, and nothing else.
func CompareProfiles(t *testing.T, got []Row, want []klaviyosim.Profile) {
	t.Helper()
	byID := map[string][]Row{}
	for _, r := range got {
		byID[r.ID] = append(byID[r.ID], r)
	}
	bad := 0
	for _, p := range want {
		rs := byID[p.ID]
		delete(byID, p.ID)
		if len(rs) != 1 {
			t.Errorf("profile %s present %d times, want once", p.ID, len(rs))
			bad++
			continue
		}
		exp := ExpectedRow(p)
		exp.RunID = rs[0].RunID
		if !reflect.DeepEqual(rs[0], exp) {
			t.Errorf("profile %s differs:\n got  %v\n want %v", p.ID, rs[0], exp)
			bad++
		}
		if bad > 5 {
			t.Fatal("too many differences")
		}
	}
	for id, rs := range byID {
		t.Errorf("unexpected profile %s (%d rows)", id, len(rs))
	}
}

// ReadParquetProfiles reads every committed profiles file under dir with
// arrow-go's Parquet reader.
func ReadParquetProfiles(t *testing.T, dir string) []Row {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	files, _ := filepath.Glob(filepath.Join(dir, "profiles", "*.parquet"))
	var out []Row
	for _, path := range files {
		f, err := file.OpenParquetFile(path, false)
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		fr, err := pqarrow.NewFileReader(f, pqarrow.ArrowReadProperties{BatchSize: 4096}, mem)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		tr := array.NewTableReader(tbl, 4096)
		for tr.Next() {
			out = append(out, rowsOf(t, tr.RecordBatch())...)
		}
		tr.Release()
		tbl.Release()
		f.Close()
	}
	return out
}

func rowsOf(t *testing.T, rec arrow.RecordBatch) []Row {
	t.Helper()
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("column %s missing", name)
		}
		return rec.Column(idx[0])
	}
	str := func(name string, i int) *string {
		a := col(name)
		if ext, ok := a.(array.ExtensionArray); ok {
			a = ext.Storage()
		}
		if a.IsNull(i) {
			return nil
		}
		var v string
		switch a := a.(type) {
		case *array.String:
			v = a.Value(i)
		case *array.Binary:
			v = string(a.Value(i))
		default:
			t.Fatalf("column %s is %T, want a string", name, a)
		}
		return &v
	}
	ts := func(name string, i int) *time.Time {
		a := col(name).(*array.Timestamp)
		if a.IsNull(i) {
			return nil
		}
		v := a.Value(i).ToTime(arrow.Microsecond).UTC()
		return &v
	}
	dbl := func(name string, i int) *float64 {
		a := col(name).(*array.Float64)
		if a.IsNull(i) {
			return nil
		}
		v := a.Value(i)
		return &v
	}
	out := make([]Row, rec.NumRows())
	for i := range out {
		r := Row{
			ID:            *str("id", i),
			Email:         str("email", i),
			FirstName:     str("first_name", i),
			City:          str("location_city", i),
			Zip:           str("location_zip", i),
			LastEventDate: ts("last_event_date", i),
			Latitude:      dbl("location_latitude", i),
			Longitude:     dbl("location_longitude", i),
			RunID:         *str("_run_id", i),
		}
		if c := ts("created", i); c != nil {
			r.Created = *c
		}
		if u := ts("updated", i); u != nil {
			r.Updated = *u
		}
		if p := str("properties", i); p != nil {
			r.Properties = DecodeJSON([]byte(*p))
		}
		out[i] = r
	}
	return out
}

// AssertNoDebris checks that dir holds nothing but _state.json and Parquet
// files in the table folders, each listed in _state.json.
func AssertNoDebris(t *testing.T, dir string) {
	t.Helper()
	stateBytes, err := os.ReadFile(filepath.Join(dir, "_state.json"))
	if err != nil {
		t.Fatalf("no _state.json: %v", err)
	}
	var st struct {
		Files map[string][]string `json:"files"`
	}
	if err := json.Unmarshal(stateBytes, &st); err != nil {
		t.Fatalf("_state.json: %v", err)
	}
	listed := map[string]bool{}
	for table, names := range st.Files {
		for _, n := range names {
			listed[filepath.Join(table, n)] = true
		}
	}
	var found []string
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
			t.Errorf("unexpected folder %s", rel)
			return fs.SkipDir
		}
		found = append(found, rel)
		if rel == "_state.json" {
			return nil
		}
		if !strings.HasSuffix(rel, ".parquet") || !listed[rel] {
			t.Errorf("debris: %s (not a committed Parquet file)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(found)
	for f := range listed {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("_state.json lists %s, which is missing", f)
		}
	}
}

// ReadPostgresProfiles reads the profiles table of schema with pgx.
func ReadPostgresProfiles(t *testing.T, url, schemaName string) []Row {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	q := `SELECT id, email, first_name, location_city, location_zip, created, updated, last_event_date,
	             location_latitude, location_longitude, properties::text, _run_id
	      FROM ` + pgx.Identifier{schemaName, "profiles"}.Sanitize()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var created, updated *time.Time
		var props *string
		if err := rows.Scan(&r.ID, &r.Email, &r.FirstName, &r.City, &r.Zip, &created, &updated, &r.LastEventDate,
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
