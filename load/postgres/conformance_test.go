package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/load/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		NewTarget: func(t *testing.T) sinktest.Target {
			url := pgtest.NewDatabase(t)
			return sinktest.Target{
				Open: func(t *testing.T) load.Sink {
					s, err := New(url, Config{Migrate: true})
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Read: func(t *testing.T) sinktest.Rows { return readRows(t, url) },
			}
		},
		Upserts:        true,
		ReplacesNUL:    true,
		NULReplacement: "\uFFFD",
	})
}

// readRows reads the committed rows as any reader of the schema would: a
// new connection, no lock. An unmigrated schema has no rows.
func readRows(t *testing.T, url string) sinktest.Rows {
	t.Helper()
	conn := connect(t, url)
	var rows sinktest.Rows
	var migrated bool
	if err := conn.QueryRow(t.Context(), `SELECT to_regclass('klaviyo.profiles') IS NOT NULL`).Scan(&migrated); err != nil {
		t.Fatal(err)
	}
	if !migrated {
		return rows
	}
	collect := func(sql string, scan func(pgx.CollectableRow) error) {
		t.Helper()
		r, err := conn.Query(t.Context(), sql)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pgx.CollectRows(r, func(row pgx.CollectableRow) (struct{}, error) { return struct{}{}, scan(row) }); err != nil {
			t.Fatal(err)
		}
	}
	collect(`SELECT id, email, first_name, created, updated, location_latitude, properties::text, _run_id, _extracted_at FROM klaviyo.profiles`,
		func(r pgx.CollectableRow) error {
			var p sinktest.ProfileRow
			err := r.Scan(&p.ID, &p.Email, &p.FirstName, &p.Created, &p.Updated, &p.Latitude, &p.Properties, &p.RunID, &p.ExtractedAt)
			rows.Profiles = append(rows.Profiles, p)
			return err
		})
	collect(`SELECT profile_id, relationship, related_type, related_id, _run_id FROM klaviyo.profile_relationships`,
		func(r pgx.CollectableRow) error {
			var x sinktest.RelationshipRow
			err := r.Scan(&x.ProfileID, &x.Relationship, &x.RelatedType, &x.RelatedID, &x.RunID)
			rows.Relationships = append(rows.Relationships, x)
			return err
		})
	collect(`SELECT run_id, profile_id, field, error, raw, rejected_at FROM klaviyo.profile_rejects`,
		func(r pgx.CollectableRow) error {
			var x sinktest.RejectRow
			err := r.Scan(&x.RunID, &x.ProfileID, &x.Field, &x.Error, &x.Raw, &x.RejectedAt)
			rows.Rejects = append(rows.Rejects, x)
			return err
		})
	return rows
}
