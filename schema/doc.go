// Package schema is the single definition of every table klaviyo-etl writes:
// profiles, profile_relationships and profile_rejects. Column names, order,
// Arrow types, PostgreSQL types, nullability, primary keys and cursor columns
// live here and nowhere else; the Parquet sink derives its file schema, the
// PostgreSQL sink its COPY column lists and the migration test its expected
// information_schema rows from these values.
//
// It does not build rows (see transform) or talk to any store (see load).
// It imports no other package of this module.
package schema
