package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// row is one row by column name; a missing column is NULL. Values are
// string, time.Time, float64 or []byte as the column's kind requires.
type row map[string]any

// newAllocator returns an allocator that fails the test if any Arrow
// memory is still allocated when it ends.
func newAllocator(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// record builds a record of table t from rows.
func record(t testing.TB, mem memory.Allocator, table *schema.Table, rows ...row) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, table.ArrowSchema())
	defer b.Release()
	for _, r := range rows {
		for i, c := range table.Columns {
			v, ok := r[c.Name]
			if !ok || v == nil {
				b.Field(i).AppendNull()
				continue
			}
			if err := appendValue(b.Field(i), c, v); err != nil {
				t.Fatalf("%s.%s: %v", table.Name, c.Name, err)
			}
		}
	}
	return b.NewRecordBatch()
}

func appendValue(fb array.Builder, c schema.Column, v any) error {
	switch c.Kind {
	case schema.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want string, got %T", v)
		}
		fb.(*array.StringBuilder).Append(s)
	case schema.JSON:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want JSON text, got %T", v)
		}
		fb.(*array.ExtensionBuilder).StorageBuilder().(*array.StringBuilder).Append(s)
	case schema.Timestamp:
		tm, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("want time.Time, got %T", v)
		}
		fb.(*array.TimestampBuilder).Append(arrow.Timestamp(tm.UnixMicro()))
	case schema.Double:
		f, ok := v.(float64)
		if !ok {
			return fmt.Errorf("want float64, got %T", v)
		}
		fb.(*array.Float64Builder).Append(f)
	case schema.Bytes:
		bs, ok := v.([]byte)
		if !ok {
			return fmt.Errorf("want []byte, got %T", v)
		}
		fb.(*array.BinaryBuilder).Append(bs)
	}
	return nil
}

// profile is a minimal valid profiles row.
func profile(id string, updated time.Time, runID string) row {
	return row{
		"id":            id,
		"email":         id + "@example.com",
		"created":       updated.Add(-time.Hour),
		"updated":       updated,
		"_run_id":       runID,
		"_extracted_at": updated.Add(time.Minute),
	}
}

func relationship(profileID, rel, relatedID, runID string) row {
	typ := map[string]string{"lists": "list", "segments": "segment"}[rel]
	if typ == "" {
		typ = rel
	}
	return row{"profile_id": profileID, "relationship": rel, "related_type": typ, "related_id": relatedID, "_run_id": runID}
}
