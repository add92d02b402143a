package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/klaviyo-etl/klaviyo-etl/migrations"
)

// ErrMigrationsPending is returned by Sink.Begin, when Config.Migrate is
// off, and the schema lacks migrations this binary has: run
// `klaviyo-etl migrate` (or drop --no-migrate).
var ErrMigrationsPending = errors.New("database schema needs migrating")

// versionTable is tern's bookkeeping table, inside the migrated schema so
// that every schema migrates on its own.
func versionTable(schemaName string) string {
	return pgx.Identifier{schemaName, "schema_version"}.Sanitize()
}

// Migrate applies every pending migration to schemaName (created if
// missing) in the database at databaseURL, and builds any secondary index
// of the tables of record that is missing (see Sink: a first backfill
// drops them until it ends). It takes the schema's run lock
// first, so it returns an error wrapping load.ErrLocked instead of changing
// tables under a running load.
func Migrate(ctx context.Context, databaseURL, schemaName string) error {
	if err := checkSchemaName(schemaName); err != nil {
		return err
	}
	cfg, err := parseURL(databaseURL)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", describe(err))
	}
	// Closing the connection also releases the lock.
	defer conn.Close(context.WithoutCancel(ctx))
	if err := tryLock(ctx, conn, schemaName); err != nil {
		return err
	}
	if err := MigrateConn(ctx, conn, schemaName); err != nil {
		return err
	}
	// Indexes a backfill dropped, if its run died before building them
	// again.
	_, err = restoreIndexesOn(ctx, conn, buildIndexQueries(schemaName))
	return err
}

// MigrateConn applies every pending migration to schemaName on conn,
// creating the schema first if needed. Migrations run under tern's
// advisory lock, one transaction each.
func MigrateConn(ctx context.Context, conn *pgx.Conn, schemaName string) error {
	if err := checkSchemaName(schemaName); err != nil {
		return err
	}
	quoted := pgx.Identifier{schemaName}.Sanitize()
	// tern creates its version table inside the schema before running any
	// migration, so the schema has to exist first. The transaction-level
	// lock keeps two first migrations from racing on CREATE SCHEMA.
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, schemaLockKey(schemaName)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+quoted)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema %s: %w", quoted, describe(err))
	}
	m, err := migrate.NewMigrator(ctx, conn, versionTable(schemaName))
	if err != nil {
		return fmt.Errorf("migrator for %s: %w", quoted, describe(err))
	}
	m.Data["schema"] = quoted
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", quoted, describe(err))
	}
	return nil
}

// Pending returns how many migrations schemaName lacks on conn: all of them
// for a schema never migrated. It changes nothing. A schema migrated by a
// newer binary is an error.
func Pending(ctx context.Context, conn *pgx.Conn, schemaName string) (int, error) {
	if err := checkSchemaName(schemaName); err != nil {
		return 0, err
	}
	files, err := migrate.FindMigrations(migrations.FS)
	if err != nil {
		return 0, fmt.Errorf("list migrations: %w", err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, versionTable(schemaName)).Scan(&exists); err != nil {
		return 0, fmt.Errorf("look for %s: %w", versionTable(schemaName), describe(err))
	}
	if !exists {
		return len(files), nil
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT version FROM `+versionTable(schemaName)).Scan(&current); err != nil {
		return 0, fmt.Errorf("read %s: %w", versionTable(schemaName), describe(err))
	}
	if current > len(files) {
		return 0, fmt.Errorf("schema %s is at migration %d, this binary knows only %d: upgrade klaviyo-etl",
			pgx.Identifier{schemaName}.Sanitize(), current, len(files))
	}
	return len(files) - current, nil
}
