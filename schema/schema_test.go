package schema

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

func TestTablesAreWellFormed(t *testing.T) {
	for _, tbl := range Tables {
		t.Run(tbl.Name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, c := range tbl.Columns {
				if seen[c.Name] {
					t.Errorf("column %s twice", c.Name)
				}
				seen[c.Name] = true
			}
			for _, k := range tbl.PrimaryKey {
				i := tbl.Index(k)
				if i < 0 {
					t.Fatalf("primary key column %s missing", k)
				}
				if tbl.Columns[i].Nullable {
					t.Errorf("primary key column %s is nullable", k)
				}
			}
			for _, k := range tbl.Cursors {
				if i := tbl.Index(k); i < 0 || tbl.Columns[i].Kind != Timestamp {
					t.Errorf("cursor column %s missing or not a timestamp", k)
				}
			}
			s := tbl.ArrowSchema()
			if s.NumFields() != len(tbl.Columns) {
				t.Fatalf("arrow schema has %d fields, table %d columns", s.NumFields(), len(tbl.Columns))
			}
			for i, f := range s.Fields() {
				if f.Name != tbl.Columns[i].Name || f.Nullable != tbl.Columns[i].Nullable {
					t.Errorf("field %d = %s nullable=%v, want %s nullable=%v", i, f.Name, f.Nullable, tbl.Columns[i].Name, tbl.Columns[i].Nullable)
				}
			}
			if v, ok := s.Metadata().GetValue("klaviyo_etl.schema_version"); !ok || v != itoa(Version) {
				t.Errorf("schema version metadata = %q, %v", v, ok)
			}
		})
	}
}

func TestColumnTypes(t *testing.T) {
	tests := []struct {
		kind     Kind
		arrowID  arrow.Type
		postgres string
	}{
		{String, arrow.STRING, "text"},
		{Timestamp, arrow.TIMESTAMP, "timestamp with time zone"},
		{Double, arrow.FLOAT64, "double precision"},
		{JSON, arrow.EXTENSION, "jsonb"},
		{Bytes, arrow.BINARY, "bytea"},
	}
	for _, tt := range tests {
		c := Column{Name: "c", Kind: tt.kind}
		if got := c.ArrowType().ID(); got != tt.arrowID {
			t.Errorf("kind %d: arrow type %v, want %v", tt.kind, got, tt.arrowID)
		}
		if got := c.PostgresType(); got != tt.postgres {
			t.Errorf("kind %d: postgres type %q, want %q", tt.kind, got, tt.postgres)
		}
	}
	ts := Column{Kind: Timestamp}.ArrowType().(*arrow.TimestampType)
	if ts.Unit != arrow.Microsecond || ts.TimeZone != "UTC" {
		t.Errorf("timestamp type = %v, want microseconds UTC", ts)
	}
}

func TestContractColumns(t *testing.T) {
	// DESIGN.md's contract names these columns; tests outside the repository rely on them.
	want := map[*Table][]string{
		Profiles: {"id", "email", "phone_number", "external_id", "anonymous_id", "first_name", "last_name",
			"organization", "locale", "title", "image", "created", "updated", "last_event_date",
			"location_address1", "location_address2", "location_city", "location_country", "location_region",
			"location_zip", "location_timezone", "location_ip", "location_latitude", "location_longitude",
			"properties", "subscriptions", "predictive_analytics", "_run_id", "_extracted_at"},
		ProfileRelationships: {"profile_id", "relationship", "related_type", "related_id"},
		ProfileRejects:       {"run_id", "profile_id", "error", "raw"},
	}
	for tbl, cols := range want {
		for _, c := range cols {
			if tbl.Index(c) < 0 {
				t.Errorf("%s lacks contract column %s", tbl.Name, c)
			}
		}
	}
}
