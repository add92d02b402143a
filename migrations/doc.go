// Package migrations holds the versioned SQL that creates and evolves the
// PostgreSQL tables of klaviyo-etl, embedded in FS.
//
// Files are named NNN_name.sql and applied in order by
// github.com/jackc/tern/v2/migrate (the runner is load/postgres.Migrate).
// Each file is a text/template: {{.schema}} is the target schema as an
// already quoted identifier (pgx.Identifier{name}.Sanitize()), so every
// object is created in, and every reference points into, that one schema;
// tern's version table lives in the same schema, so schemas migrate
// independently.
//
// The tables of record (profiles, profile_relationships, profile_rejects)
// must match package schema column for column; a test in load/postgres
// compares them through information_schema. Applied files are never edited:
// a change is a new file (and, when a column changes, a bump of
// schema.Version).
//
// The package contains no Go logic beyond the embed.
package migrations
