package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
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
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/load/parquet"
	"github.com/klaviyo-etl/klaviyo-etl/load/postgres"
)

// The comparison is the one of cmd/klaviyo-etl's end-to-end tests
// (helpers_test.go), extended to every text column the simulator sends and
// made to count what differs instead of stopping at the first difference.

// row is a profile as read back from a sink, in comparable Go values.
type row struct {
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
	l := p.Location
	r := row{
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
		r.Properties = decodeJSON(p.Properties)
	}
	return r
}

// decodeJSON compares JSON by value, numbers exactly (see e2etest.DecodeJSON).
func decodeJSON(b []byte) any { return e2etest.DecodeJSON(b) }

// tally is how an output compares with the data set.
type tally struct {
	Want, Got  int
	Lost       int // expected profiles missing
	Duplicates int // extra rows of profiles present more than once
	Differ     int // profiles present once with a value that differs
	Unexpected int // rows of profiles not in the data set
	examples   []string
}

func (tl tally) exact() bool {
	return tl.Lost == 0 && tl.Duplicates == 0 && tl.Differ == 0 && tl.Unexpected == 0 && tl.Got == tl.Want
}

func (tl tally) String() string {
	return fmt.Sprintf("%d rows for %d profiles: %d lost, %d duplicate rows, %d differ, %d unexpected; %s",
		tl.Got, tl.Want, tl.Lost, tl.Duplicates, tl.Differ, tl.Unexpected, strings.Join(tl.examples, "; "))
}

func (tl *tally) example(format string, args ...any) {
	if len(tl.examples) < 4 {
		tl.examples = append(tl.examples, fmt.Sprintf(format, args...))
	}
}

// compareProfiles compares got with want. With subset, profiles of want
// that are missing are not counted as lost (an interrupted run's prefix).
func compareProfiles(got []row, want []klaviyosim.Profile, subset bool) tally {
	tl := tally{Want: len(want), Got: len(got)}
	byID := make(map[string][]row, len(got))
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
		exp := expectedRow(p)
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

// readProfiles reads the profiles of record of a target.
func readProfiles(t testing.TB, tg target) []row {
	t.Helper()
	if tg.sink == "parquet" {
		return readParquetProfiles(t, tg.out)
	}
	return readPostgresProfiles(t, tg.url)
}

// checkExact reads the target and fails t unless it holds exactly want,
// and, for Parquet, nothing but the committed files.
func checkExact(t testing.TB, tg target, want []klaviyosim.Profile) tally {
	t.Helper()
	tl := compareProfiles(readProfiles(t, tg), want, false)
	if !tl.exact() {
		t.Errorf("output is not the data set: %v", tl)
	}
	if tg.sink == "parquet" {
		if debris := parquetDebris(t, tg.out); len(debris) > 0 {
			t.Errorf("debris in the output folder: %v", debris)
		}
	}
	if n := len(readRejects(t, tg)); n != 0 {
		t.Errorf("%d reject rows, want none", n)
	}
	return tl
}

// liveFiles lists the committed files of one table of a Parquet output.
func liveFiles(t testing.TB, dir, table string) []string {
	t.Helper()
	files, err := parquet.LiveFiles(dir)
	if err != nil {
		t.Fatalf("read %s/_state.json: %v", dir, err)
	}
	return files[table]
}

// eachParquetRecord calls fn for every record batch of the committed files
// of table.
func eachParquetRecord(t testing.TB, dir, table string, fn func(arrow.RecordBatch)) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, path := range liveFiles(t, dir, table) {
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

// readParquetProfiles reads every committed profiles file under dir.
func readParquetProfiles(t testing.TB, dir string) []row {
	t.Helper()
	var out []row
	eachParquetRecord(t, dir, "profiles", func(rec arrow.RecordBatch) { out = append(out, rowsOf(t, rec)...) })
	return out
}

// arrowColumns gives typed access to a record's columns by name.
type arrowColumns struct {
	t   testing.TB
	rec arrow.RecordBatch
}

func (c arrowColumns) col(name string) arrow.Array {
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

func (c arrowColumns) bytes(name string, i int) []byte {
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

func (c arrowColumns) str(name string, i int) *string {
	if c.col(name).IsNull(i) {
		return nil
	}
	v := string(c.bytes(name, i))
	return &v
}

func (c arrowColumns) ts(name string, i int) *time.Time {
	a := c.col(name).(*array.Timestamp)
	if a.IsNull(i) {
		return nil
	}
	v := a.Value(i).ToTime(arrow.Microsecond).UTC()
	return &v
}

func (c arrowColumns) dbl(name string, i int) *float64 {
	a := c.col(name).(*array.Float64)
	if a.IsNull(i) {
		return nil
	}
	v := a.Value(i)
	return &v
}

func rowsOf(t testing.TB, rec arrow.RecordBatch) []row {
	c := arrowColumns{t: t, rec: rec}
	out := make([]row, rec.NumRows())
	for i := range out {
		r := row{
			ID:    *c.str("id", i),
			Email: c.str("email", i), PhoneNumber: c.str("phone_number", i), ExternalID: c.str("external_id", i),
			FirstName: c.str("first_name", i), LastName: c.str("last_name", i), Organization: c.str("organization", i),
			Locale: c.str("locale", i), Title: c.str("title", i), Image: c.str("image", i),
			Address1: c.str("location_address1", i), Address2: c.str("location_address2", i),
			City: c.str("location_city", i), Country: c.str("location_country", i),
			Region: c.str("location_region", i), Zip: c.str("location_zip", i),
			Timezone: c.str("location_timezone", i), IP: c.str("location_ip", i),
			LastEventDate: c.ts("last_event_date", i),
			Latitude:      c.dbl("location_latitude", i),
			Longitude:     c.dbl("location_longitude", i),
			RunID:         *c.str("_run_id", i),
		}
		if v := c.ts("created", i); v != nil {
			r.Created = *v
		}
		if v := c.ts("updated", i); v != nil {
			r.Updated = *v
		}
		if p := c.bytes("properties", i); p != nil {
			r.Properties = decodeJSON(p)
		}
		out[i] = r
	}
	return out
}

// parquetDebris lists what a Parquet output folder holds besides
// _state.json and the files it lists, and the listed files that are
// missing.
func parquetDebris(t testing.TB, dir string) []string {
	t.Helper()
	files, err := parquet.LiveFiles(dir)
	if err != nil {
		return []string{"_state.json: " + err.Error()}
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
		if !listed[path] {
			debris = append(debris, rel)
		}
		delete(listed, path)
		return nil
	})
	if err != nil {
		debris = append(debris, err.Error())
	}
	for p := range listed {
		debris = append(debris, "missing: "+p)
	}
	sort.Strings(debris)
	return debris
}

// readState returns a target's committed State.
func readState(t testing.TB, tg target) load.State {
	t.Helper()
	var st load.State
	var err error
	if tg.sink == "parquet" {
		st, err = parquet.ReadState(tg.out)
	} else {
		st, err = postgres.ReadState(context.Background(), tg.url, pgSchema)
	}
	if err != nil {
		t.Fatalf("read state: %v", err)
	}
	return st
}

// rejectRow is a profile_rejects row.
type rejectRow struct {
	ProfileID *string
	Field     *string
	Error     string
	Raw       []byte
}

// readRejects reads a target's profile_rejects rows.
func readRejects(t testing.TB, tg target) []rejectRow {
	t.Helper()
	var out []rejectRow
	if tg.sink == "parquet" {
		eachParquetRecord(t, tg.out, "profile_rejects", func(rec arrow.RecordBatch) {
			c := arrowColumns{t: t, rec: rec}
			for i := 0; i < int(rec.NumRows()); i++ {
				out = append(out, rejectRow{ProfileID: c.str("profile_id", i), Field: c.str("field", i),
					Error: *c.str("error", i), Raw: c.bytes("raw", i)})
			}
		})
		return out
	}
	conn := connect(t, tg.url)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT profile_id, field, error, raw FROM `+
		pgx.Identifier{pgSchema, "profile_rejects"}.Sanitize())
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil // no run got as far as migrating
		}
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r rejectRow
		if err := rows.Scan(&r.ProfileID, &r.Field, &r.Error, &r.Raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func newDatabase(t testing.TB) string { return pgtest.NewDatabase(t) }

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return conn
}

// readPostgresProfiles reads the profiles table.
func readPostgresProfiles(t testing.TB, url string) []row {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, url)
	defer conn.Close(ctx)
	q := `SELECT id, email, phone_number, external_id, first_name, last_name, organization, locale, title, image,
	             location_address1, location_address2, location_city, location_country, location_region, location_zip,
	             location_timezone, location_ip, created, updated, last_event_date,
	             location_latitude, location_longitude, properties::text, _run_id
	      FROM ` + pgx.Identifier{pgSchema, "profiles"}.Sanitize()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		t.Fatal(err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
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
			r.Properties = decodeJSON([]byte(*props))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
