package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// extraColumns are the columns a table of record has beyond package schema,
// after schema's own. Anything else is drift.
var extraColumns = map[string][]column{
	schema.ProfileRejects.Name: {{name: "reject_id", typ: "bigint", nullable: false}},
}

type column struct {
	name     string
	typ      string
	nullable bool
}

func (c column) String() string {
	null := "NOT NULL"
	if c.nullable {
		null = "NULL"
	}
	return fmt.Sprintf("%s %s %s", c.name, c.typ, null)
}

func columns(t *testing.T, conn *pgx.Conn, schemaName, table string) []column {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT column_name, data_type, is_nullable = 'YES'
		FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schemaName, table)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		return c, r.Scan(&c.name, &c.typ, &c.nullable)
	})
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

func TestMigrationsMatchSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	for _, schemaName := range []string{DefaultSchema, `Odd "name"; DROP`} {
		t.Run(schemaName, func(t *testing.T) {
			ctx := t.Context()
			n, err := Pending(ctx, conn, schemaName)
			if err != nil || n == 0 {
				t.Fatalf("pending on a new schema: %d, %v", n, err)
			}
			for range 2 { // a second run finds nothing to do
				if err := MigrateConn(ctx, conn, schemaName); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := Pending(ctx, conn, schemaName); err != nil || n != 0 {
				t.Fatalf("pending after migrating: %d, %v", n, err)
			}
			for _, table := range schema.Tables {
				t.Run(table.Name, func(t *testing.T) {
					var want []column
					for _, c := range table.Columns {
						want = append(want, column{c.Name, c.PostgresType(), c.Nullable})
					}
					want = append(want, extraColumns[table.Name]...)
					got := columns(t, conn, schemaName, table.Name)
					if !slices.Equal(got, want) {
						t.Errorf("columns differ from package schema\n got %v\nwant %v", got, want)
					}
					if table.PrimaryKey != nil {
						if got := primaryKey(t, conn, schemaName, table.Name); !slices.Equal(got, table.PrimaryKey) {
							t.Errorf("primary key %v, want %v", got, table.PrimaryKey)
						}
					}
				})
			}
			views := map[string][]column{
				"profile_lists":    {{"profile_id", "text", true}, {"list_id", "text", true}},
				"profile_segments": {{"profile_id", "text", true}, {"segment_id", "text", true}},
			}
			for v, want := range views {
				if got := columns(t, conn, schemaName, v); !slices.Equal(got, want) {
					t.Errorf("view %s: %v, want %v", v, got, want)
				}
			}
			for _, table := range []string{"etl_state", "etl_runs", "schema_version"} {
				if len(columns(t, conn, schemaName, table)) == 0 {
					t.Errorf("no table %s", table)
				}
			}
			// Indexes the merge and readers rely on.
			for _, idx := range []string{"profiles_created_idx", "profiles_updated_idx", "profiles_email_idx", "profile_relationships_related_idx"} {
				var ok bool
				if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND indexname = $2)`, schemaName, idx).Scan(&ok); err != nil || !ok {
					t.Errorf("index %s missing (%v)", idx, err)
				}
			}
		})
	}
	// Nothing escaped into public.
	var n int
	if err := conn.QueryRow(context.WithoutCancel(t.Context()), `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d tables in public (%v)", n, err)
	}
}

func primaryKey(t *testing.T, conn *pgx.Conn, schemaName, table string) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT k.column_name FROM information_schema.table_constraints c
		JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name)
		WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = $1 AND c.table_name = $2
		ORDER BY k.ordinal_position`, schemaName, table)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return cols
}
