//go:build nobenchduckdb

package main

import (
	"context"
	"errors"
)

// hasDuckDB is false in the lean build (-tags nobenchduckdb) that runs
// every scenario but DuckDB's: linking DuckDB adds ~28 MB to the peak RSS
// of any process, which would be counted against the pipeline.
const hasDuckDB = false

func runDuckDB(context.Context, childSpec) ([]measurement, error) {
	return nil, errors.New("this binary was built with -tags nobenchduckdb, without DuckDB")
}
