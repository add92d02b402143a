package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// FuzzAddPage feeds arbitrary bytes to AddPage. It must never panic, leak
// Arrow memory or lose a record, and must agree with encoding/json on what
// is valid JSON. Seeds: testdata/fuzz/FuzzAddPage.
func FuzzAddPage(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		b := NewBuilder(mem, testOptions)
		defer b.Release()

		res, err := b.AddPage(body)
		valid := json.Valid(body)
		var se *syntaxError
		switch {
		case err == nil && !valid:
			t.Fatalf("AddPage accepted invalid JSON")
		case err != nil && valid && errors.As(err, &se):
			t.Fatalf("AddPage calls valid JSON invalid: %v", err)
		case err != nil && !errors.Is(err, ErrMalformedPage):
			t.Fatalf("error %v does not wrap ErrMalformedPage", err)
		}
		c := b.Counts()
		if err != nil {
			if c != (Counts{}) {
				t.Fatalf("malformed page added something: %+v", c)
			}
			return
		}
		if c.Records != c.Loaded+c.LoadedWithRejects+c.RejectedWhole || int64(res.Records) != c.Records ||
			int64(res.Loaded) != c.Loaded || int64(res.LoadedWithRejects) != c.LoadedWithRejects || int64(res.Rejected) != c.RejectedWhole {
			t.Fatalf("records not accounted: page %+v counts %+v", res, c)
		}
		if c.RejectRows < c.LoadedWithRejects+c.RejectedWhole {
			t.Fatalf("%d reject rows for %d records with rejects", c.RejectRows, c.LoadedWithRejects+c.RejectedWhole)
		}

		recs := b.Flush()
		defer recs.Release()
		if recs.Profiles.NumRows() != c.Loaded+c.LoadedWithRejects || recs.Relationships.NumRows() != c.Relationships ||
			recs.Rejects.NumRows() != c.RejectRows {
			t.Fatalf("rows %d/%d/%d disagree with counts %+v", recs.Profiles.NumRows(), recs.Relationships.NumRows(), recs.Rejects.NumRows(), c)
		}
		checkRecords(t, body, recs)

		// Adding the page's records one by one gives the same counts.
		var pg wirePage
		if err := (&scanDecoder{}).page(body, &pg); err != nil {
			t.Fatal(err)
		}
		one := NewBuilder(mem, testOptions)
		defer one.Release()
		for _, raw := range pg.data {
			one.Add(raw)
		}
		if one.Counts() != c {
			t.Fatalf("record by record %+v, page %+v", one.Counts(), c)
		}
		one.Flush().Release()
	})
}

// checkRecords checks what must hold of any output: every string valid
// UTF-8, every JSON value valid and canonical, every reject's raw a part of
// the input.
func checkRecords(t *testing.T, body []byte, recs Records) {
	t.Helper()
	var canon canonicalizer
	for _, rec := range []arrow.RecordBatch{recs.Profiles, recs.Relationships, recs.Rejects} {
		for ci, a := range rec.Columns() {
			name := rec.ColumnName(ci)
			for r := 0; r < a.Len(); r++ {
				if a.IsNull(r) {
					if !rec.Schema().Field(ci).Nullable {
						t.Fatalf("%s row %d: null in a non-nullable column", name, r)
					}
					continue
				}
				switch a := a.(type) {
				case *array.String:
					if !utf8.ValidString(a.Value(r)) {
						t.Fatalf("%s row %d: invalid UTF-8 %q", name, r, a.Value(r))
					}
				case array.ExtensionArray:
					v := []byte(a.Storage().(*array.String).Value(r))
					if !utf8.Valid(v) || !json.Valid(v) {
						t.Fatalf("%s row %d: not valid JSON text: %q", name, r, v)
					}
					again, _, err := canon.canonical(nil, v)
					if err != nil || !bytes.Equal(again, v) {
						t.Fatalf("%s row %d: not canonical: %q → %q (%v)", name, r, v, again, err)
					}
				case *array.Binary:
					if !bytes.Contains(body, a.Value(r)) {
						t.Fatalf("%s row %d: raw %q is not part of the page", name, r, a.Value(r))
					}
				}
			}
		}
	}
}
