package schema

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/extensions"
)

// Version is the version of the table definitions below. It is written into
// every Parquet file and checked against etl_state in PostgreSQL; bump it
// whenever a column is added, removed or changes type.
const Version = 1

// Kind is the logical type of a column, from which both the Arrow and the
// PostgreSQL type follow.
type Kind int

// Column kinds.
const (
	String    Kind = iota // UTF-8 text
	Timestamp             // instant, microseconds, UTC
	Double                // 64-bit float
	JSON                  // JSON text; Arrow JSON extension over utf8, jsonb in PostgreSQL
	Bytes                 // arbitrary bytes kept verbatim
)

// Column is one column of a table.
type Column struct {
	Name     string
	Kind     Kind
	Nullable bool
}

// ArrowType is the Arrow data type of the column.
func (c Column) ArrowType() arrow.DataType {
	switch c.Kind {
	case Timestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case Double:
		return arrow.PrimitiveTypes.Float64
	case JSON:
		return jsonType
	case Bytes:
		return arrow.BinaryTypes.Binary
	default:
		return arrow.BinaryTypes.String
	}
}

// PostgresType is the PostgreSQL type of the column, as information_schema
// reports it in data_type.
func (c Column) PostgresType() string {
	switch c.Kind {
	case Timestamp:
		return "timestamp with time zone"
	case Double:
		return "double precision"
	case JSON:
		return "jsonb"
	case Bytes:
		return "bytea"
	default:
		return "text"
	}
}

// Table is one table: its name, columns in order, primary key and the
// columns a run can use as its incremental cursor.
type Table struct {
	Name       string
	Columns    []Column
	PrimaryKey []string
	Cursors    []string
}

// Names returns the column names in order.
func (t *Table) Names() []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

// Index returns the position of the named column, or -1.
func (t *Table) Index(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// ArrowSchema returns the Arrow schema of the table. The schema metadata
// carries the table name and Version.
func (t *Table) ArrowSchema() *arrow.Schema {
	fields := make([]arrow.Field, len(t.Columns))
	for i, c := range t.Columns {
		fields[i] = arrow.Field{Name: c.Name, Type: c.ArrowType(), Nullable: c.Nullable}
	}
	md := arrow.NewMetadata(
		[]string{"klaviyo_etl.table", "klaviyo_etl.schema_version"},
		[]string{t.Name, itoa(Version)},
	)
	return arrow.NewSchema(fields, &md)
}

var jsonType = func() *extensions.JSONType {
	jt, err := extensions.NewJSONType(arrow.BinaryTypes.String)
	if err != nil {
		// Only reachable if arrow-go stops accepting utf8 storage, which its
		// own tests pin.
		panic("schema: arrow JSON extension type: " + err.Error())
	}
	return jt
}()

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
