package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/load"
)

// ReadState returns the State last committed to schemaName for the default
// target, without taking the run lock: a committed State is consistent at
// any time. A schema never migrated has the zero State.
func ReadState(ctx context.Context, databaseURL, schemaName string) (load.State, error) {
	if err := checkSchemaName(schemaName); err != nil {
		return load.State{}, err
	}
	cfg, err := parseURL(databaseURL)
	if err != nil {
		return load.State{}, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return load.State{}, fmt.Errorf("connect: %w", describe(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	table := pgx.Identifier{schemaName, "etl_state"}.Sanitize()
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		return load.State{}, fmt.Errorf("look for %s: %w", table, describe(err))
	}
	if !exists {
		return load.State{}, nil
	}
	return readState(ctx, conn, buildQueries(schemaName), DefaultTarget)
}

func readState(ctx context.Context, conn *pgx.Conn, q *queries, target string) (load.State, error) {
	var text string
	err := conn.QueryRow(ctx, q.readState, target).Scan(&text)
	if errors.Is(err, pgx.ErrNoRows) {
		return load.State{}, nil
	}
	if err != nil {
		return load.State{}, fmt.Errorf("read state %q: %w", target, describe(err))
	}
	var st load.State
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return load.State{}, fmt.Errorf("decode state %q: %w", target, err)
	}
	return st, nil
}
