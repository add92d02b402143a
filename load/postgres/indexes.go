package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/schema"
)

// secondaryIndexes are the indexes migration 001 gives the tables of record
// besides their primary keys. No statement of the sink needs them (COPY,
// the probe and the merge use the primary keys); readers do. A first
// backfill drops them and builds them again at its end, which costs less
// than maintaining them row by row (see doc.go). TestSecondaryIndexes
// keeps this list equal to what the migrations create.
var secondaryIndexes = []struct {
	name    string
	table   *schema.Table
	columns string
}{
	{"profiles_created_idx", schema.Profiles, "created"},
	{"profiles_updated_idx", schema.Profiles, "updated"},
	{"profiles_email_idx", schema.Profiles, "email"},
	{"profile_relationships_related_idx", schema.ProfileRelationships, "relationship, related_id"},
}

// indexQueries are the statements that drop and rebuild secondaryIndexes
// in one schema.
type indexQueries struct {
	names  []string          // qualified and quoted, for to_regclass
	create map[string]string // by qualified name: CREATE INDEX IF NOT EXISTS …
	drop   string
}

func buildIndexQueries(schemaName string) indexQueries {
	q := indexQueries{create: make(map[string]string)}
	for _, ix := range secondaryIndexes {
		name := pgx.Identifier{schemaName, ix.name}.Sanitize()
		q.names = append(q.names, name)
		q.create[name] = "CREATE INDEX IF NOT EXISTS " + quoteIdent(ix.name) + " ON " +
			pgx.Identifier{schemaName, ix.table.Name}.Sanitize() + " (" + ix.columns + ")"
	}
	q.drop = "DROP INDEX IF EXISTS " + strings.Join(q.names, ", ")
	return q
}

// restoreIndexes builds, in tx, whichever of secondaryIndexes is missing,
// as the migrations define it, and returns how many it built. A run that
// dropped them and died is the usual reason; one dropped by hand comes
// back too. The whole of it, the lookup included, is exempt from any
// statement_timeout: the run that dropped the indexes must be able to build
// them again, however large the tables have grown and however slow the
// server is at that moment. The timeout stays lifted for the rest of tx.
func restoreIndexes(ctx context.Context, tx pgx.Tx, q indexQueries) (int, error) {
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return 0, fmt.Errorf("lift statement timeout: %w", describe(err))
	}
	rows, err := tx.Query(ctx, `SELECT n FROM unnest($1::text[]) n WHERE to_regclass(n) IS NULL`, q.names)
	if err != nil {
		return 0, fmt.Errorf("look for missing indexes: %w", describe(err))
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("look for missing indexes: %w", describe(err))
	}
	if len(missing) == 0 {
		return 0, nil
	}
	for _, name := range missing {
		if _, err := tx.Exec(ctx, q.create[name]); err != nil {
			return 0, fmt.Errorf("create index %s: %w", name, describe(err))
		}
	}
	return len(missing), nil
}

// deferLockWait bounds how long Begin waits to drop the secondary indexes,
// which needs every reader of the two tables gone for an instant: a
// backfill that cannot have that in time keeps them.
const deferLockWait = time.Second

// restoreIndexesOn is restoreIndexes in a transaction of its own on conn.
func restoreIndexesOn(ctx context.Context, conn *pgx.Conn, q indexQueries) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var err error
		n, err = restoreIndexes(ctx, tx, q)
		return err
	})
	return n, err
}

// deferIndexes drops secondaryIndexes for a first backfill. It reports
// whether it did: not when readers held the tables for deferLockWait.
func (s *Sink) deferIndexes(ctx context.Context) (bool, error) {
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", s.deferLockWait.Milliseconds())); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.idx.drop)
		return err
	})
	if sqlState(err) == "55P03" { // lock_not_available
		s.log.Debug().Msg("readers hold the tables; the backfill keeps the secondary indexes")
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("drop secondary indexes: %w", describe(err))
	}
	return true, nil
}
