package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/load/parquet"
	"github.com/klaviyo-etl/klaviyo-etl/load/postgres"
)

func cmdState(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c runConfig
	fs := newFlagSet("state", stderr)
	sinkFlags(fs, &c, &env{getenv: getenv})
	printUsage(fs, stderr, "klaviyo-etl state [--sink parquet --out DIR | --sink postgres --database-url URL --pg-schema S]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.resolveSecrets(getenv); err != nil {
		return err
	}
	if err := c.checkSink(); err != nil {
		return err
	}
	var st load.State
	var err error
	switch c.Sink {
	case "postgres":
		st, err = postgres.ReadState(ctx, c.DatabaseURL, c.PGSchema)
	default:
		st, err = parquet.ReadState(c.Out)
	}
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c runConfig
	fs := newFlagSet("migrate", stderr)
	fs.StringVar(&c.PGSchema, "pg-schema", envOr(getenv, "KLAVIYO_ETL_PG_SCHEMA", "klaviyo"), "PostgreSQL schema [KLAVIYO_ETL_PG_SCHEMA]")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL [DATABASE_URL]")
	printUsage(fs, stderr, "klaviyo-etl migrate --database-url URL [--pg-schema S]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c.Sink = "postgres"
	if err := c.resolveSecrets(getenv); err != nil {
		return err
	}
	if err := c.checkSink(); err != nil {
		return err
	}
	if err := postgres.Migrate(ctx, c.DatabaseURL, c.PGSchema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(stdout, "schema %s is up to date\n", pgx.Identifier{c.PGSchema}.Sanitize())
	return nil
}

// checkTarget verifies a target is reachable without writing to it.
func checkTarget(ctx context.Context, c *runConfig) (string, error) {
	switch c.Sink {
	case "postgres":
		conn, err := pgx.Connect(ctx, c.DatabaseURL)
		if err != nil {
			return "", fmt.Errorf("connect: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		n, err := postgres.Pending(ctx, conn, c.PGSchema)
		if err != nil {
			return "", err
		}
		if n > 0 && c.NoMigrate {
			return "", fmt.Errorf("%d migrations pending in schema %s and --no-migrate is set: run `klaviyo-etl migrate`", n, c.PGSchema)
		}
		return fmt.Sprintf("PostgreSQL schema %s reachable, %d migrations pending", c.PGSchema, n), nil
	default:
		if _, err := parquet.ReadState(c.Out); err != nil {
			return "", err
		}
		dir := c.Out
		for {
			if fi, err := os.Stat(dir); err == nil {
				if !fi.IsDir() {
					return "", fmt.Errorf("%s is not a folder", dir)
				}
				f, err := os.CreateTemp(dir, ".klaviyo-etl-dry-run-*")
				if err != nil {
					return "", fmt.Errorf("output folder not writable: %w", err)
				}
				f.Close()
				os.Remove(f.Name())
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
		return fmt.Sprintf("output folder %s writable", c.Out), nil
	}
}
