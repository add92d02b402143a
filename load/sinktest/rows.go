package sinktest

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// ProfileRow is the part of a profiles row the suite writes and reads back:
// the key, the run columns and one column of every kind (text, timestamp,
// double, JSON), nullable ones as pointers (nil is NULL). Profiles leaves
// every other column NULL.
type ProfileRow struct {
	ID          string
	Email       *string
	FirstName   *string
	Created     *time.Time
	Updated     *time.Time
	Latitude    *float64
	Properties  *string // JSON text
	RunID       string
	ExtractedAt time.Time
}

// RelationshipRow is a whole profile_relationships row.
type RelationshipRow struct {
	ProfileID    string
	Relationship string
	RelatedType  string
	RelatedID    string
	RunID        string
}

// RejectRow is a whole profile_rejects row.
type RejectRow struct {
	RunID      string
	ProfileID  *string
	Field      *string
	Error      string
	Raw        []byte
	RejectedAt time.Time
}

// Ptr returns a pointer to v, for the nullable fields of the row types.
func Ptr[T any](v T) *T { return &v }

// Profiles builds a profiles record, in schema.Profiles' Arrow schema, from
// rows. Columns ProfileRow does not carry are NULL. The caller releases the
// record.
func Profiles(mem memory.Allocator, rows ...ProfileRow) arrow.RecordBatch {
	b := newRowBuilder(mem, schema.Profiles)
	defer b.release()
	for _, r := range rows {
		b.append(map[string]any{
			"id":                r.ID,
			"email":             r.Email,
			"first_name":        r.FirstName,
			"created":           r.Created,
			"updated":           r.Updated,
			"location_latitude": r.Latitude,
			"properties":        r.Properties,
			"_run_id":           r.RunID,
			"_extracted_at":     r.ExtractedAt,
		})
	}
	return b.record()
}

// Relationships builds a profile_relationships record from rows. The caller
// releases the record.
func Relationships(mem memory.Allocator, rows ...RelationshipRow) arrow.RecordBatch {
	b := newRowBuilder(mem, schema.ProfileRelationships)
	defer b.release()
	for _, r := range rows {
		b.append(map[string]any{
			"profile_id":   r.ProfileID,
			"relationship": r.Relationship,
			"related_type": r.RelatedType,
			"related_id":   r.RelatedID,
			"_run_id":      r.RunID,
		})
	}
	return b.record()
}

// Rejects builds a profile_rejects record from rows. The caller releases the
// record.
func Rejects(mem memory.Allocator, rows ...RejectRow) arrow.RecordBatch {
	b := newRowBuilder(mem, schema.ProfileRejects)
	defer b.release()
	for _, r := range rows {
		b.append(map[string]any{
			"run_id":      r.RunID,
			"profile_id":  r.ProfileID,
			"field":       r.Field,
			"error":       r.Error,
			"raw":         r.Raw,
			"rejected_at": r.RejectedAt,
		})
	}
	return b.record()
}

// ProfileRowsFrom reads the ProfileRow columns of a profiles record, found
// by name, so a record read back from a store (whose JSON column may come
// back as plain text) converts as well as one built by Profiles.
func ProfileRowsFrom(rec arrow.RecordBatch) ([]ProfileRow, error) {
	c, err := columnsOf(rec, "id", "email", "first_name", "created", "updated",
		"location_latitude", "properties", "_run_id", "_extracted_at")
	if err != nil {
		return nil, err
	}
	rows := make([]ProfileRow, rec.NumRows())
	for i := range rows {
		rows[i] = ProfileRow{
			ID:          c.str(0, i),
			Email:       c.strPtr(1, i),
			FirstName:   c.strPtr(2, i),
			Created:     c.timePtr(3, i),
			Updated:     c.timePtr(4, i),
			Latitude:    c.floatPtr(5, i),
			Properties:  c.strPtr(6, i),
			RunID:       c.str(7, i),
			ExtractedAt: c.time(8, i),
		}
	}
	return rows, c.err
}

// RelationshipRowsFrom reads a profile_relationships record.
func RelationshipRowsFrom(rec arrow.RecordBatch) ([]RelationshipRow, error) {
	c, err := columnsOf(rec, "profile_id", "relationship", "related_type", "related_id", "_run_id")
	if err != nil {
		return nil, err
	}
	rows := make([]RelationshipRow, rec.NumRows())
	for i := range rows {
		rows[i] = RelationshipRow{
			ProfileID:    c.str(0, i),
			Relationship: c.str(1, i),
			RelatedType:  c.str(2, i),
			RelatedID:    c.str(3, i),
			RunID:        c.str(4, i),
		}
	}
	return rows, c.err
}

// RejectRowsFrom reads a profile_rejects record.
func RejectRowsFrom(rec arrow.RecordBatch) ([]RejectRow, error) {
	c, err := columnsOf(rec, "run_id", "profile_id", "field", "error", "raw", "rejected_at")
	if err != nil {
		return nil, err
	}
	rows := make([]RejectRow, rec.NumRows())
	for i := range rows {
		rows[i] = RejectRow{
			RunID:      c.str(0, i),
			ProfileID:  c.strPtr(1, i),
			Field:      c.strPtr(2, i),
			Error:      c.str(3, i),
			Raw:        c.bytes(4, i),
			RejectedAt: c.time(5, i),
		}
	}
	return rows, c.err
}

// rowBuilder appends rows given as column name → value to a record of one
// table. Values: nil or a nil pointer for NULL, string, []byte, time.Time,
// float64, or pointers to those.
type rowBuilder struct {
	t *schema.Table
	b *array.RecordBuilder
}

func newRowBuilder(mem memory.Allocator, t *schema.Table) *rowBuilder {
	return &rowBuilder{t: t, b: array.NewRecordBuilder(mem, t.ArrowSchema())}
}

func (r *rowBuilder) release() { r.b.Release() }

func (r *rowBuilder) record() arrow.RecordBatch { return r.b.NewRecordBatch() }

func (r *rowBuilder) append(vals map[string]any) {
	for i, c := range r.t.Columns {
		appendValue(r.b.Field(i), vals[c.Name])
	}
}

func appendValue(b array.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.AppendNull()
	case *string:
		if v == nil {
			b.AppendNull()
			return
		}
		appendValue(b, *v)
	case *time.Time:
		if v == nil {
			b.AppendNull()
			return
		}
		appendValue(b, *v)
	case *float64:
		if v == nil {
			b.AppendNull()
			return
		}
		appendValue(b, *v)
	case string:
		switch b := b.(type) {
		case *array.StringBuilder:
			b.Append(v)
		case *array.ExtensionBuilder:
			b.StorageBuilder().(*array.StringBuilder).Append(v)
		case *array.BinaryBuilder:
			b.AppendString(v)
		default:
			panic(fmt.Sprintf("sinktest: string value for %s column", b.Type()))
		}
	case []byte:
		b.(*array.BinaryBuilder).Append(v)
	case time.Time:
		b.(*array.TimestampBuilder).Append(arrow.Timestamp(v.UnixMicro()))
	case float64:
		b.(*array.Float64Builder).Append(v)
	default:
		panic(fmt.Sprintf("sinktest: unsupported value %T", v))
	}
}

// columns reads values of named columns of one record, remembering the
// first conversion error.
type columns struct {
	cols []arrow.Array
	err  error
}

func columnsOf(rec arrow.RecordBatch, names ...string) (*columns, error) {
	c := &columns{cols: make([]arrow.Array, len(names))}
	for i, n := range names {
		idx := rec.Schema().FieldIndices(n)
		if len(idx) != 1 {
			return nil, fmt.Errorf("column %q: found %d times", n, len(idx))
		}
		c.cols[i] = rec.Column(idx[0])
	}
	return c, nil
}

func (c *columns) fail(col int, what string) {
	if c.err == nil {
		c.err = fmt.Errorf("column %d: cannot read %s from %s", col, what, c.cols[col].DataType())
	}
}

func (c *columns) strPtr(col, i int) *string {
	a := c.cols[col]
	if a.IsNull(i) {
		return nil
	}
	if e, ok := a.(array.ExtensionArray); ok {
		a = e.Storage()
	}
	switch a := a.(type) {
	case *array.String:
		return Ptr(a.Value(i))
	case *array.LargeString:
		return Ptr(a.Value(i))
	case *array.Binary:
		return Ptr(string(a.Value(i)))
	}
	c.fail(col, "text")
	return nil
}

func (c *columns) str(col, i int) string {
	if p := c.strPtr(col, i); p != nil {
		return *p
	}
	c.fail(col, "non-null text")
	return ""
}

func (c *columns) bytes(col, i int) []byte {
	a := c.cols[col]
	if a.IsNull(i) {
		c.fail(col, "non-null bytes")
		return nil
	}
	switch a := a.(type) {
	case *array.Binary:
		return append([]byte{}, a.Value(i)...)
	case *array.LargeBinary:
		return append([]byte{}, a.Value(i)...)
	}
	c.fail(col, "bytes")
	return nil
}

func (c *columns) timePtr(col, i int) *time.Time {
	a := c.cols[col]
	if a.IsNull(i) {
		return nil
	}
	ts, ok := a.(*array.Timestamp)
	if !ok {
		c.fail(col, "timestamp")
		return nil
	}
	unit := ts.DataType().(*arrow.TimestampType).Unit
	return Ptr(ts.Value(i).ToTime(unit).UTC())
}

func (c *columns) time(col, i int) time.Time {
	if p := c.timePtr(col, i); p != nil {
		return *p
	}
	c.fail(col, "non-null timestamp")
	return time.Time{}
}

func (c *columns) floatPtr(col, i int) *float64 {
	a := c.cols[col]
	if a.IsNull(i) {
		return nil
	}
	f, ok := a.(*array.Float64)
	if !ok {
		c.fail(col, "double")
		return nil
	}
	return Ptr(f.Value(i))
}
