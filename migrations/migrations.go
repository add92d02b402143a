package migrations

import "embed"

// FS holds the migration files, NNN_name.sql, at its root.
//
//go:embed *.sql
var FS embed.FS
