package extract

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParsePage(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		name     string
		body     string
		field    string
		wantErr  bool
		wantIDs  []string
		wantCur  []time.Time
		wantNext string
	}{
		{
			name:  "two records and next",
			field: "created",
			body: `{"data":[{"type":"profile","id":"01A","attributes":{"email":"a@x","created":"2024-01-02T03:04:05+00:00"}},` +
				`{"type":"profile","id":"01B","attributes":{"created":"2024-01-02T03:04:06.5Z","updated":"2025-01-01T00:00:00"}}],` +
				`"links":{"self":"s","next":"https://a.klaviyo.com/api/profiles?page%5Bcursor%5D=abc"},"meta":{"x":[1,2.5e3,-0.1,true,null]}}`,
			wantIDs:  []string{"01A", "01B"},
			wantCur:  []time.Time{ts("2024-01-02T03:04:05Z"), ts("2024-01-02T03:04:06.5Z")},
			wantNext: "https://a.klaviyo.com/api/profiles?page%5Bcursor%5D=abc",
		},
		{
			name: "updated field, escapes in keys and values, next null", field: "updated",
			body:    "{\"links\":{\"next\":null},\"data\":[{\"id\":\"a\\u0062c\",\"attributes\":{\"upd\\u0061ted\":\"2024-05-06 07:08:09+02:00\",\"created\":\"x\"}}]}",
			wantIDs: []string{"abc"}, wantCur: []time.Time{ts("2024-05-06T05:08:09Z")},
		},
		{
			name: "missing id and cursor still delivered", field: "created",
			body:    `{"data":[{"type":"profile","attributes":{"created":null}},{"id":7,"attributes":{"created":"not a time"}},"odd"]}`,
			wantIDs: []string{"", "", ""}, wantCur: []time.Time{{}, {}, {}},
		},
		{name: "empty data", field: "created", body: ` {"data":[],"links":{"next":"n"}} `, wantNext: "n"},
		{name: "no data member", field: "created", body: `{"links":{}}`, wantErr: true},
		{name: "not an object", field: "created", body: `[1]`, wantErr: true},
		{name: "truncated", field: "created", body: `{"data":[{"id":"a","attributes":{"created":"2024-01-02T03:04:05Z"}}`, wantErr: true},
		{name: "truncated string", field: "created", body: `{"data":[{"id":"a`, wantErr: true},
		{name: "trailing garbage", field: "created", body: `{"data":[]}x`, wantErr: true},
		{name: "bad literal", field: "created", body: `{"data":[],"meta":tru}`, wantErr: true},
		{name: "bad number", field: "created", body: `{"data":[],"meta":01}`, wantErr: true},
		{name: "bad escape", field: "created", body: `{"data":[],"meta":"\x"}`, wantErr: true},
		{name: "control char", field: "created", body: "{\"data\":[],\"meta\":\"a\tb\"}", wantErr: true},
		{name: "missing comma", field: "created", body: `{"data":[] "links":{}}`, wantErr: true},
		{name: "html error page", field: "created", body: `<html>502</html>`, wantErr: true},
		{name: "empty body", field: "created", body: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := parsePage([]byte(tt.body), tt.field)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if len(doc.records) != len(tt.wantIDs) {
				t.Fatalf("%d records, want %d", len(doc.records), len(tt.wantIDs))
			}
			for i, r := range doc.records {
				if r.ID != tt.wantIDs[i] || !r.Cursor.Equal(tt.wantCur[i]) {
					t.Errorf("record %d: id %q cursor %v, want %q %v", i, r.ID, r.Cursor, tt.wantIDs[i], tt.wantCur[i])
				}
				if !json.Valid(r.Raw) || !strings.Contains(tt.body, string(r.Raw)) {
					t.Errorf("record %d: raw %q is not the element as received", i, r.Raw)
				}
			}
			if doc.next != tt.wantNext {
				t.Errorf("next = %q, want %q", doc.next, tt.wantNext)
			}
		})
	}
}

func TestParsePageSeedFixture(t *testing.T) {
	body, err := os.ReadFile("../testdata/seed-get-profiles.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parsePage(body, "created")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	if len(doc.records) != len(want.Data) || len(doc.records) == 0 {
		t.Fatalf("%d records, want %d", len(doc.records), len(want.Data))
	}
	for i, r := range doc.records {
		if string(r.Raw) != string(want.Data[i]) {
			t.Errorf("record %d raw differs", i)
		}
		if r.ID == "" || r.Cursor.IsZero() {
			t.Errorf("record %d: id %q cursor %v", i, r.ID, r.Cursor)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339 in UTC, "" = rejected
	}{
		{"2023-06-05T14:49:54+00:00", "2023-06-05T14:49:54Z"},
		{"2023-06-05T14:49:54Z", "2023-06-05T14:49:54Z"},
		{"2023-06-05 14:49:54+00:00", "2023-06-05T14:49:54Z"},
		{"2022-11-08T00:00:00", "2022-11-08T00:00:00Z"},
		{"2023-08-15T12:30:00.710Z", "2023-08-15T12:30:00.71Z"},
		{"2023-08-15T12:30:00.123456789123Z", "2023-08-15T12:30:00.123456789Z"},
		{"2023-08-15T12:30:00-04:00", "2023-08-15T16:30:00Z"},
		{"2023-08-15T12:30:00+0530", "2023-08-15T07:00:00Z"},
		{"2023-08-15T12:30:00+05", "2023-08-15T07:30:00Z"},
		{"2023-08-15T12:30", "2023-08-15T12:30:00Z"},
		{"2018-12-27", "2018-12-27T00:00:00Z"},
		{"2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"2023-02-29T00:00:00Z", ""},
		{"2023-13-01T00:00:00Z", ""},
		{"2023-06-05T24:00:00Z", ""},
		{"2023-06-05T14:49:54.Z", ""},
		{"2023-06-05T14:49:54+0", ""},
		{"2023-06-05X14:49:54Z", ""},
		{"1700000000", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseTimestamp([]byte(tt.in))
			if tt.want == "" {
				if ok {
					t.Fatalf("accepted as %v", got)
				}
				return
			}
			if !ok {
				t.Fatal("rejected")
			}
			if s := got.Format(time.RFC3339Nano); s != tt.want || got.Location() != time.UTC {
				t.Errorf("got %s (%v), want %s", s, got.Location(), tt.want)
			}
		})
	}
}

func FuzzParsePage(f *testing.F) {
	f.Add([]byte(`{"data":[{"id":"a","attributes":{"created":"2024-01-02T03:04:05Z"}}],"links":{"next":null}}`))
	f.Add([]byte(`{"data":[1,"x",null,{"id":null}],"meta":{"a":[{}]}}`))
	f.Add([]byte(`{"data":[{"id":"\u00e9\ud83d\ude00"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := parsePage(body, "created")
		if err == nil && !json.Valid(body) && nesting(body) <= 10000 {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if err != nil {
			return
		}
		for _, r := range doc.records {
			if !json.Valid(r.Raw) && nesting(r.Raw) <= 10000 {
				t.Fatalf("record raw %q is not a JSON value", r.Raw)
			}
		}
		// Every valid page must be read the way encoding/json reads it.
		var want struct {
			Data  []json.RawMessage `json:"data"`
			Links json.RawMessage   `json:"links"`
		}
		if json.Unmarshal(body, &want) == nil && len(want.Data) != len(doc.records) {
			t.Fatalf("%d records, encoding/json sees %d", len(doc.records), len(want.Data))
		}
	})
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2023-06-05T14:49:54+00:00", "2023-08-15 12:30:00.7Z", "2018-12-27", "2023-08-15T12:30:00-0400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTimestamp([]byte(s))
		if !ok {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("%q: location %v", s, got.Location())
		}
		// Where the standard library reads the same text, it must agree.
		if want, err := time.Parse(time.RFC3339Nano, s); err == nil && !want.Equal(got) {
			t.Fatalf("%q: got %v, time.Parse %v", s, got, want)
		}
	})
}

// nesting is the deepest bracket nesting of b, ignoring brackets in strings;
// encoding/json refuses values nested deeper than 10,000, parsePage does not.
func nesting(b []byte) int {
	depth, most, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
			most = max(most, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return most
}

// TestDeepRecordDoesNotBlockItsPage: a record nested far deeper than any
// decoder's limit still leaves its page readable, so the transform can keep
// it as a reject and the rest of the page loads.
func TestDeepRecordDoesNotBlockItsPage(t *testing.T) {
	const depth = 200_000
	deep := strings.Repeat(`{"a":[`, depth) + "1" + strings.Repeat("]}", depth)
	body := []byte(`{"data":[{"id":"deep","attributes":{"created":"2024-01-02T03:04:05Z","properties":` + deep +
		`}},{"id":"ok","attributes":{"created":"2024-01-02T03:04:06Z"}}],"links":{"next":null}}`)
	doc, err := parsePage(body, "created")
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.records) != 2 || doc.records[0].ID != "deep" || doc.records[1].ID != "ok" {
		t.Fatalf("records %+v", doc.records)
	}
	if _, err := parsePage([]byte(`{"data":[{"id":"x","p":`+strings.Repeat("[", depth)+`]}]}`), "created"); err == nil {
		t.Error("an unbalanced deep value was accepted")
	}
}
