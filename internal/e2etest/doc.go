// Package e2etest holds what end-to-end tests need to check an export
// against the simulator's data set: reading the profiles back from Parquet
// (with arrow-go's reader) and from PostgreSQL (with pgx), the row each
// simulated profile must become, an exact comparison (every profile once,
// values equal, JSON numbers compared by value) and a check that an output
// folder holds no debris. Only tests import it.
package e2etest
