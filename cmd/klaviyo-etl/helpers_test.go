package main

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

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
)

// TestMain lets the test binary stand in for the klaviyo-etl binary, so the
// kill tests run the real program as a subprocess without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("KLAVIYO_ETL_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	pgtest.Main(m)
}

// result is what one in-process invocation of the program did.
type result struct {
	code           int
	stdout, stderr string
}

// invoke runs the program in-process as main would, with only env as its
// environment.
func invoke(t *testing.T, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := run(ctx, args, getenv, &stdout, &stderr)
	code := exitCode(ctx, err, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// summaryOf decodes the run's JSON summary line from stdout.
func summaryOf(t *testing.T, r result) map[string]any {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.HasPrefix(line, "{") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("summary line %q: %v", line, err)
			}
			return m
		}
	}
	t.Fatalf("no summary line in stdout %q (stderr %s)", r.stdout, r.stderr)
	return nil
}

// row is a profile as read back from a sink, in comparable Go values.
type row struct {
	ID                          string
	Email, FirstName, City, Zip *string
	Created, Updated            time.Time
	LastEventDate               *time.Time
	Latitude, Longitude         *float64
	Properties                  any
	RunID                       string
}

func (r row) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// expectedRow is what the simulator's profile must become.
func expectedRow(p klaviyosim.Profile) row {
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
	r := row{
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
		r.Properties = decodeJSON(p.Properties)
	}
	return r
}

func decodeJSON(b []byte) any {
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

// compareProfiles checks that got holds every expected profile exactly once
// with equal values, and nothing else.
func compareProfiles(t *testing.T, got []row, want []klaviyosim.Profile) {
	t.Helper()
	byID := map[string][]row{}
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
		exp := expectedRow(p)
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

// readParquetProfiles reads every committed profiles file under dir with
// arrow-go's Parquet reader.
func readParquetProfiles(t *testing.T, dir string) []row {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	files, _ := filepath.Glob(filepath.Join(dir, "profiles", "*.parquet"))
	var out []row
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

func rowsOf(t *testing.T, rec arrow.RecordBatch) []row {
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
	out := make([]row, rec.NumRows())
	for i := range out {
		r := row{
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
			r.Properties = decodeJSON([]byte(*p))
		}
		out[i] = r
	}
	return out
}

// assertNoDebris checks that dir holds nothing but _state.json and Parquet
// files in the table folders, each listed in _state.json.
func assertNoDebris(t *testing.T, dir string) {
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
