package transform

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

func newTestBuilder(t *testing.T) *Builder {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	b := NewBuilder(mem, testOptions)
	t.Cleanup(b.Release)
	return b
}

func flush(t *testing.T, b *Builder) Records {
	t.Helper()
	recs := b.Flush()
	t.Cleanup(recs.Release)
	return recs
}

// col returns the named column of rec.
func col(t *testing.T, rec arrow.RecordBatch, name string) arrow.Array {
	t.Helper()
	for i := 0; i < int(rec.NumCols()); i++ {
		if rec.ColumnName(i) == name {
			return rec.Column(i)
		}
	}
	t.Fatalf("no column %q", name)
	return nil
}

func str(t *testing.T, rec arrow.RecordBatch, name string, row int) any {
	t.Helper()
	a := col(t, rec, name)
	if a.IsNull(row) {
		return nil
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(row)
	case *array.Binary:
		return string(a.Value(row))
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(row))).UTC()
	case *array.Float64:
		return a.Value(row)
	case array.ExtensionArray:
		return a.Storage().(*array.String).Value(row)
	}
	t.Fatalf("column %q: unexpected %T", name, a)
	return nil
}

// TestSeedResponse transforms the seed's sample response verbatim: two
// profiles whose coordinates and relationship entries are objects.
func TestSeedResponse(t *testing.T) {
	body, err := os.ReadFile("../testdata/seed-get-profiles.json")
	if err != nil {
		t.Fatal(err)
	}
	b := newTestBuilder(t)
	res, err := b.AddPage(body)
	if err != nil {
		t.Fatal(err)
	}
	want := PageResult{Records: 2, LoadedWithRejects: 2, RejectRows: 12,
		Next: "http://NnrhoJ.yoxbCPqJ22QuItzKai,UUBEwF4XM80zQ+MHdKVfcvQMzgsQM"}
	if res != want {
		t.Fatalf("page result %+v, want %+v", res, want)
	}
	recs := flush(t, b)
	p := recs.Profiles
	if p.NumRows() != 2 || recs.Relationships.NumRows() != 0 || recs.Rejects.NumRows() != 12 {
		t.Fatalf("rows: %d profiles, %d relationships, %d rejects; want 2, 0, 12",
			p.NumRows(), recs.Relationships.NumRows(), recs.Rejects.NumRows())
	}
	for _, c := range []struct {
		col  string
		row  int
		want any
	}{
		{"id", 0, "est non aliqua"},
		{"email", 0, "deserunt id et ullamco"},
		{"anonymous_id", 0, "sint laboris dolor nulla"},
		{"locale", 0, nil},
		{"created", 0, time.Date(2003, 6, 16, 23, 46, 17, 908e6, time.UTC)},
		{"updated", 0, time.Date(1964, 6, 13, 15, 28, 28, 187e6, time.UTC)},
		{"last_event_date", 1, time.Date(2006, 12, 27, 1, 43, 48, 332e6, time.UTC)},
		{"location_zip", 0, "aute Lorem incididunt reprehenderit"},
		{"location_latitude", 0, nil},
		{"location_longitude", 1, nil},
		{"properties", 0, "{}"},
		{"subscriptions", 0, nil},
		{"id", 1, "anim nulla"},
		{"email", 1, "est in"},
		{"_run_id", 1, "run-1"},
		{"_extracted_at", 1, testOptions.ExtractedAt},
	} {
		if got := str(t, p, c.col, c.row); got != c.want {
			t.Errorf("profiles[%d].%s = %#v, want %#v", c.row, c.col, got, c.want)
		}
	}
	// Each profile: latitude, longitude, and two entries each in lists and
	// segments; every reject row holds the record verbatim.
	var records []json.RawMessage
	var page struct{ Data []json.RawMessage }
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	records = page.Data
	wantFields := []string{"location_latitude", "location_longitude", "relationships.lists", "relationships.lists", "relationships.segments", "relationships.segments"}
	for i := 0; i < 12; i++ {
		rec := i / 6
		if got, want := str(t, recs.Rejects, "profile_id", i), str(t, p, "id", rec); got != want {
			t.Errorf("reject %d profile_id %v, want %v", i, got, want)
		}
		if got := str(t, recs.Rejects, "field", i); got != wantFields[i%6] {
			t.Errorf("reject %d field %v, want %v", i, got, wantFields[i%6])
		}
		if got := str(t, recs.Rejects, "raw", i); got != string(records[rec]) {
			t.Errorf("reject %d raw is not the record as received", i)
		}
		if got := str(t, recs.Rejects, "error", i).(string); !strings.Contains(got, "object") {
			t.Errorf("reject %d error %q does not say what was wrong", i, got)
		}
	}
}

// TestAddOutcomes covers what Add makes of single records.
func TestAddOutcomes(t *testing.T) {
	cases := []struct {
		name          string
		raw           string
		status        Status
		id            string
		rejectFields  []string // "" = null field
		relationships int
	}{
		{"minimal", `{"type":"profile","id":"p1"}`, Loaded, "p1", nil, 0},
		{"white space around", " \n{\"type\":\"profile\",\"id\":\"p1\"}\t", Loaded, "p1", nil, 0},
		{"not JSON", `{"type":"profile","id":"p1"`, Rejected, "", []string{""}, 0},
		{"trailing data", `{"type":"profile","id":"p1"} {}`, Rejected, "", []string{""}, 0},
		{"empty", ``, Rejected, "", []string{""}, 0},
		{"array", `[{"type":"profile","id":"p1"}]`, Rejected, "", []string{""}, 0},
		{"no id", `{"type":"profile"}`, Rejected, "", []string{"id"}, 0},
		{"null id", `{"type":"profile","id":null}`, Rejected, "", []string{"id"}, 0},
		{"numeric id", `{"type":"profile","id":7}`, Rejected, "", []string{"id"}, 0},
		{"lone surrogate id", `{"type":"profile","id":"\ud800"}`, Rejected, "", []string{"id"}, 0},
		{"wrong type keeps id", `{"type":"list","id":"L1"}`, Rejected, "L1", []string{"type"}, 0},
		{"wrong type and no id", `{"type":"list"}`, Rejected, "", []string{"type"}, 0},
		{"escaped type", `{"type":"\u0070rofile","id":"p1"}`, Loaded, "p1", nil, 0},
		{"escaped id", `{"type":"profile","id":"p\u00e9"}`, Loaded, "pé", nil, 0},
		{"nul in id", `{"type":"profile","id":"p\u0000"}`, Loaded, "p\x00", nil, 0},
		{"bad coordinate", `{"type":"profile","id":"p1","attributes":{"location":{"latitude":{}}}}`, LoadedWithRejects, "p1", []string{"location_latitude"}, 0},
		{"two bad fields", `{"type":"profile","id":"p1","attributes":{"email":[],"created":"soon"}}`, LoadedWithRejects, "p1", []string{"email", "created"}, 0},
		{"links only", `{"type":"profile","id":"p1","relationships":{"lists":{"links":{"self":"s"}}}}`, Loaded, "p1", nil, 0},
		{"relationship rows", `{"type":"profile","id":"p1","relationships":{"lists":{"data":[{"type":"list","id":"a"},{"type":"list","id":"b"}]},"push-tokens":{"data":{"type":"push-token","id":"t"}}}}`, Loaded, "p1", nil, 3},
		{"bad relationship entry", `{"type":"profile","id":"p1","relationships":{"lists":{"data":[{"type":"list","id":{}},{"type":"list","id":"b"}]}}}`, LoadedWithRejects, "p1", []string{"relationships.lists"}, 1},
		{"relationship name escaped", `{"type":"profile","id":"p1","relationships":{"li\u0073ts":{"data":[{"type":"list","id":"a"}]}}}`, Loaded, "p1", nil, 1},
		{"relationship name invalid", `{"type":"profile","id":"p1","relationships":{"\udc00":{"data":[{"type":"list","id":"a"}]}}}`, LoadedWithRejects, "p1", []string{"relationships"}, 0},
		{"relationship name raw invalid", "{\"type\":\"profile\",\"id\":\"p1\",\"relationships\":{\"l\xffsts\":{\"data\":[{\"type\":\"list\",\"id\":\"a\"}]}}}", LoadedWithRejects, "p1", []string{"relationships"}, 0},
		{"relationship name with backslash", `{"type":"profile","id":"p1","relationships":{"a\\b":{"data":[{"type":"list","id":"a"}]}}}`, Loaded, "p1", nil, 1},
		{"invalid UTF-8 kept with reject", "{\"type\":\"profile\",\"id\":\"p1\",\"attributes\":{\"city\":1,\"title\":\"\xc0\"}}", LoadedWithRejects, "p1", []string{"title"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBuilder(t)
			o := b.Add([]byte(tc.raw))
			if o.Status != tc.status || o.ID != tc.id || o.Rejects != len(tc.rejectFields) || o.Relationships != tc.relationships {
				t.Fatalf("outcome %+v, want status %v id %q rejects %d relationships %d", o, tc.status, tc.id, len(tc.rejectFields), tc.relationships)
			}
			recs := flush(t, b)
			wantProfiles := int64(1)
			if tc.status == Rejected {
				wantProfiles = 0
			}
			if recs.Profiles.NumRows() != wantProfiles || recs.Relationships.NumRows() != int64(tc.relationships) || recs.Rejects.NumRows() != int64(len(tc.rejectFields)) {
				t.Fatalf("rows %d/%d/%d, want %d/%d/%d", recs.Profiles.NumRows(), recs.Relationships.NumRows(), recs.Rejects.NumRows(),
					wantProfiles, tc.relationships, len(tc.rejectFields))
			}
			for i, f := range tc.rejectFields {
				var want any = f
				if f == "" {
					want = nil
				}
				if got := str(t, recs.Rejects, "field", i); got != want {
					t.Errorf("reject %d field %v, want %v", i, got, want)
				}
				if got := str(t, recs.Rejects, "raw", i); got != tc.raw {
					t.Errorf("reject %d raw %q, want the record %q", i, got, tc.raw)
				}
				var wantID any = tc.id
				if tc.id == "" {
					wantID = nil
				}
				if got := str(t, recs.Rejects, "profile_id", i); got != wantID {
					t.Errorf("reject %d profile_id %v, want %v", i, got, wantID)
				}
				if got := str(t, recs.Rejects, "error", i); got == "" {
					t.Errorf("reject %d has no error", i)
				}
			}
			if tc.status != Rejected {
				if got := str(t, recs.Profiles, "id", 0); got != tc.id {
					t.Errorf("profile id %v, want %q", got, tc.id)
				}
			}
		})
	}
}

func TestOutcomeCursors(t *testing.T) {
	b := newTestBuilder(t)
	o := b.Add([]byte(`{"type":"profile","id":"p1","attributes":{"created":"2023-06-05T16:49:54+02:00","updated":"2023-06-06"}}`))
	if want := time.Date(2023, 6, 5, 14, 49, 54, 0, time.UTC); !o.Created.Equal(want) || o.Created.Location() != time.UTC {
		t.Errorf("Created %v, want %v", o.Created, want)
	}
	if want := time.Date(2023, 6, 6, 0, 0, 0, 0, time.UTC); !o.Updated.Equal(want) {
		t.Errorf("Updated %v, want %v", o.Updated, want)
	}
	o = b.Add([]byte(`{"type":"profile","id":"p2","attributes":{"created":"junk"}}`))
	if !o.Created.IsZero() || !o.Updated.IsZero() {
		t.Errorf("unreadable cursors: %v %v, want zero", o.Created, o.Updated)
	}
}

// TestAccounting: every record lands in exactly one count, across pages,
// single records and caller rejects, and the rows match the counts.
func TestAccounting(t *testing.T) {
	b := newTestBuilder(t)
	var profiles, rels, rejects int64
	for _, page := range []string{"typical", "drift", "relationships", "rejects"} {
		body, err := os.ReadFile("testdata/pages/" + page + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.AddPage(body); err != nil {
			t.Fatal(err)
		}
	}
	b.Add([]byte(`nonsense`))
	b.Add([]byte(`{"type":"profile","id":"last"}`))
	b.Reject([]byte(`{"type":"profile","id":"dup"}`), "dup", "", "already loaded in this run")
	b.Reject(nil, "", "", "")
	recs := flush(t, b)
	profiles, rels, rejects = recs.Profiles.NumRows(), recs.Relationships.NumRows(), recs.Rejects.NumRows()
	c := b.Counts()
	if c.Records != c.Loaded+c.LoadedWithRejects+c.RejectedWhole {
		t.Errorf("records %d != loaded %d + with rejects %d + rejected %d", c.Records, c.Loaded, c.LoadedWithRejects, c.RejectedWhole)
	}
	if c.Records != 3+8+4+19+2+2 {
		t.Errorf("records %d, want %d", c.Records, 3+8+4+19+2+2)
	}
	if profiles != c.Loaded+c.LoadedWithRejects || rels != c.Relationships || rejects != c.RejectRows {
		t.Errorf("rows %d/%d/%d disagree with counts %+v", profiles, rels, rejects, c)
	}
	if c.RejectRows < c.LoadedWithRejects+c.RejectedWhole {
		t.Errorf("%d reject rows for %d records with rejects", c.RejectRows, c.LoadedWithRejects+c.RejectedWhole)
	}
	last := rejects - 1
	if str(t, recs.Rejects, "profile_id", int(last)) != nil || str(t, recs.Rejects, "error", int(last)) != "rejected by the caller" || str(t, recs.Rejects, "raw", int(last)) != "" {
		t.Errorf("caller reject with nothing given: %v %v %v", str(t, recs.Rejects, "profile_id", int(last)),
			str(t, recs.Rejects, "error", int(last)), str(t, recs.Rejects, "raw", int(last)))
	}
	if got := str(t, recs.Rejects, "error", int(last-1)); got != "already loaded in this run" {
		t.Errorf("caller reject error %v", got)
	}
	var perRule int64
	for r, n := range c.Rules {
		if Rule(r) != RuleNUL && Rule(r) != RuleInvalidUTF8 && Rule(r) != RuleTimestampTruncated {
			perRule += n
		}
	}
	if fed := int64(len(attributeSlots) + len(locationSlots)); perRule != fed*profiles {
		t.Errorf("rules counted %d values, want %d columns × %d rows", perRule, fed, profiles)
	}
}

// TestMalformedPage: a page that is not a JSON object with a data array is
// an error and adds nothing.
func TestMalformedPage(t *testing.T) {
	for name, body := range map[string]string{
		"truncated":       `{"data":[{"type":"profile","id":"p1"},{"type":"prof`,
		"empty":           ``,
		"not an object":   `[{"type":"profile","id":"p1"}]`,
		"no data":         `{"links":{"next":null}}`,
		"data not array":  `{"data":{"type":"profile","id":"p1"}}`,
		"data null":       `{"data":null}`,
		"data twice":      `{"data":[{"type":"profile","id":"p1"}],"data":[]}`,
		"trailing data":   `{"data":[{"type":"profile","id":"p1"}]}]`,
		"bad later value": `{"data":[{"type":"profile","id":"p1"}],"links":{"next":tru}}`,
		"control char":    "{\"data\":[{\"type\":\"profile\",\"id\":\"p\x01\"}]}",
	} {
		t.Run(name, func(t *testing.T) {
			b := newTestBuilder(t)
			res, err := b.AddPage([]byte(body))
			if !errors.Is(err, ErrMalformedPage) {
				t.Fatalf("error %v, want ErrMalformedPage", err)
			}
			if res != (PageResult{}) || b.Counts() != (Counts{}) || b.Rows() != 0 {
				t.Fatalf("something was added: %+v %+v", res, b.Counts())
			}
			recs := flush(t, b)
			if recs.Rejects.NumRows() != 0 {
				t.Fatal("reject rows written")
			}
		})
	}
	b := newTestBuilder(t)
	if res, err := b.AddPage([]byte(`{"data":[]}`)); err != nil || res.Records != 0 {
		t.Fatalf("empty page: %+v %v", res, err)
	}
}

// TestFlush: records are never nil, carry exactly the tables' Arrow
// schemas, and each Flush starts over while counts go on.
func TestFlush(t *testing.T) {
	b := newTestBuilder(t)
	recs := flush(t, b)
	for _, rec := range []arrow.RecordBatch{recs.Profiles, recs.Relationships, recs.Rejects} {
		if rec == nil || rec.NumRows() != 0 {
			t.Fatalf("empty flush: %v", rec)
		}
	}
	b.Add([]byte(`{"type":"profile","id":"a","attributes":{"properties":{"x":1}},"relationships":{"lists":{"data":[{"type":"list","id":"L"}]}}}`))
	b.Add([]byte(`{"type":"profile","id":"b"}`))
	if b.Rows() != 2 {
		t.Fatalf("Rows %d, want 2", b.Rows())
	}
	first := flush(t, b)
	if b.Rows() != 0 {
		t.Fatalf("Rows after Flush %d", b.Rows())
	}
	b.Add([]byte(`{"type":"profile","id":"c"}`))
	b.SetExtractedAt(testOptions.ExtractedAt.Add(time.Hour))
	b.Add([]byte(`{"type":"profile","id":"d"}`))
	second := flush(t, b)
	if first.Profiles.NumRows() != 2 || first.Relationships.NumRows() != 1 || second.Profiles.NumRows() != 2 || second.Relationships.NumRows() != 0 {
		t.Fatalf("rows %d+%d then %d+%d", first.Profiles.NumRows(), first.Relationships.NumRows(), second.Profiles.NumRows(), second.Relationships.NumRows())
	}
	if str(t, second.Profiles, "id", 0) != "c" || str(t, second.Profiles, "_extracted_at", 1) != testOptions.ExtractedAt.Add(time.Hour) {
		t.Errorf("second batch: %v %v", str(t, second.Profiles, "id", 0), str(t, second.Profiles, "_extracted_at", 1))
	}
	if c := b.Counts(); c.Records != 4 || c.Relationships != 1 {
		t.Errorf("counts %+v", c)
	}
	for _, x := range []struct {
		rec arrow.RecordBatch
		tbl *schema.Table
	}{{first.Profiles, schema.Profiles}, {first.Relationships, schema.ProfileRelationships}, {first.Rejects, schema.ProfileRejects}} {
		if !x.rec.Schema().Equal(x.tbl.ArrowSchema()) {
			t.Errorf("%s: schema %v, want %v", x.tbl.Name, x.rec.Schema(), x.tbl.ArrowSchema())
		}
	}
	props := col(t, first.Profiles, "properties")
	if _, ok := props.(*extensions.JSONArray); !ok {
		t.Errorf("properties is %T, want the JSON extension array", props)
	}
	if str(t, first.Profiles, "properties", 0) != `{"x":1}` {
		t.Errorf("properties %v", str(t, first.Profiles, "properties", 0))
	}
}

// TestSchemaCoverage: transform feeds every column of every table, with a
// typed builder, so a column added to schema without transform knowing
// fails here rather than arriving as nulls.
func TestSchemaCoverage(t *testing.T) {
	for i, c := range schema.Profiles.Columns {
		if profileRoles[i] == roleNone {
			t.Errorf("profiles.%s: transform does not fill it", c.Name)
		}
	}
	for _, x := range []struct {
		tbl   *schema.Table
		roles []int
	}{{schema.ProfileRelationships, relationshipRoles}, {schema.ProfileRejects, rejectRoles}} {
		for i, c := range x.tbl.Columns {
			if x.roles[i] == colNone {
				t.Errorf("%s.%s: transform does not fill it", x.tbl.Name, c.Name)
			}
		}
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewBuilder(mem, Options{})
	defer b.Release()
	for _, tb := range []table{b.profiles, b.relationships, b.rejects} {
		for i, c := range tb.cols {
			typed := c.bin != nil || c.ts != nil || c.f64 != nil
			if !typed {
				t.Errorf("column %d (%v): no typed builder", i, c.any.Type())
			}
		}
	}
}

func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for r := Rule(0); r < NumRules; r++ {
		n := r.String()
		if n == "" || seen[n] || strings.HasPrefix(n, "rule(") {
			t.Errorf("rule %d: name %q", r, n)
		}
		seen[n] = true
	}
	for s, want := range map[Status]string{Loaded: "loaded", LoadedWithRejects: "loaded-with-rejects", Rejected: "rejected", 0: "status(0)"} {
		if s.String() != want {
			t.Errorf("status %d: %q, want %q", s, s.String(), want)
		}
	}
	if NumRules.String() != "rule(16)" {
		t.Errorf("out of range: %q", NumRules.String())
	}
}

// TestRejectAmplification: reject rows each hold the whole record, so one
// record's rows are bounded; a repeated member is reported once.
func TestRejectAmplification(t *testing.T) {
	entries := strings.Repeat(`{"type":"list","id":1},`, 99) + `{"type":"list","id":"ok"}`
	many := `{"type":"profile","id":"p1","relationships":{"lists":{"data":[` + entries + `]}}}`
	dupes := `{"type":"profile","id":"p2","attributes":{` + strings.Repeat(`"email":"x",`, 5000) + `"email":"last"}}`
	exactly := `{"type":"profile","id":"p3","relationships":{"lists":{"data":[` + strings.Repeat(`{"type":"list","id":1},`, 31) + `{"type":"list","id":2}]}}}`
	cases := []struct {
		name      string
		raw       string
		rows      int
		lastField any
		lastError string
	}{
		{"99 bad entries", many, maxRejectsPerRecord, nil, "68 more problems in this record, not listed one by one; the first: relationships.lists: data[31]: id is a number, want a string"},
		{"5000 repeats", dupes, 1, "email", "member appears more than once; the last value was kept"},
		{"exactly the limit", exactly, maxRejectsPerRecord, "relationships.lists", "data[31]: id is a number, want a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBuilder(t)
			o := b.Add([]byte(tc.raw))
			recs := flush(t, b)
			if o.Rejects != tc.rows || recs.Rejects.NumRows() != int64(tc.rows) {
				t.Fatalf("%d reject rows (outcome %d), want %d", recs.Rejects.NumRows(), o.Rejects, tc.rows)
			}
			last := tc.rows - 1
			if got := str(t, recs.Rejects, "field", last); got != tc.lastField {
				t.Errorf("last field %v, want %v", got, tc.lastField)
			}
			if got := str(t, recs.Rejects, "error", last); got != tc.lastError {
				t.Errorf("last error %q, want %q", got, tc.lastError)
			}
		})
	}
}

// TestCountsAdd: the counts of two Builders, added, are those of one
// Builder that read both pages.
func TestCountsAdd(t *testing.T) {
	r := newRand(31)
	p1, p2 := genPage(r, 60), genPage(r, 45)
	mem := memory.NewGoAllocator()
	one, a, b := NewBuilder(mem, testOptions), NewBuilder(mem, testOptions), NewBuilder(mem, testOptions)
	defer one.Release()
	defer a.Release()
	defer b.Release()
	for _, step := range []struct {
		b    *Builder
		page []byte
	}{{one, p1}, {one, p2}, {a, p1}, {b, p2}} {
		if _, err := step.b.AddPage(step.page); err != nil {
			t.Fatal(err)
		}
	}
	sum := a.Counts()
	sum.Add(b.Counts())
	if want := one.Counts(); sum != want || want.Records != 105 {
		t.Errorf("added counts %+v, want %+v", sum, want)
	}
}
