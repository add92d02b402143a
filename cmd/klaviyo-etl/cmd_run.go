package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/klaviyo-etl/klaviyo-etl/extract"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/load/parquet"
	"github.com/klaviyo-etl/klaviyo-etl/load/postgres"
	"github.com/klaviyo-etl/klaviyo-etl/pipeline"
)

func cmdRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c runConfig
	fs := newFlagSet("run", stderr)
	e := &env{getenv: getenv}
	runFlags(fs, &c, e)
	printUsage(fs, stderr, "klaviyo-etl run [flags]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := e.err(); err != nil {
		return err
	}
	if err := c.resolve(getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.LogLevel, c.LogFormat)
	if err != nil {
		return err
	}
	_, err = exportOnce(ctx, &c, log, stdout, stderr)
	return err
}

// exportOnce runs one export with a resolved configuration and prints its
// summary line on stdout.
func exportOnce(ctx context.Context, c *runConfig, log zerolog.Logger, stdout, stderr io.Writer) (pipeline.Summary, error) {
	client, err := extract.New(extract.Config{
		BaseURL:          c.BaseURL,
		APIKey:           c.APIKey,
		Revision:         c.Revision,
		PageSize:         c.PageSize,
		Burst:            c.burst,
		Steady:           c.steady,
		BudgetShare:      c.BudgetShare,
		Concurrency:      c.concurrency,
		RequestTimeout:   c.RequestTimeout,
		RetryDeadline:    c.RetryDeadline,
		AdditionalFields: splitList(c.AdditionalFields),
		Include:          splitList(c.Include),
		Logger:           log,
	})
	if err != nil {
		return pipeline.Summary{}, usageError{fmt.Errorf("klaviyo client: %w", err)}
	}
	if c.DryRun {
		return pipeline.Summary{}, dryRun(ctx, c, client, log, stdout)
	}
	sink, err := openSink(c, log)
	if err != nil {
		return pipeline.Summary{}, err
	}
	cfg := pipeline.Config{
		CursorField:        c.CursorField,
		Revision:           c.Revision,
		Since:              c.since,
		Until:              c.until,
		Lookback:           c.Lookback,
		FullRefresh:        c.FullRefresh,
		CheckpointRows:     c.CheckpointRows,
		CheckpointInterval: c.CheckpointInterval,
		Logger:             log,
	}
	if showProgress(c.Progress, stderr) {
		_, steady := client.Budget()
		pl := newProgressLine(stderr, float64(steady.N)/steady.Per.Seconds())
		cfg.Progress = pl.update
	}
	sum, runErr := pipeline.Run(ctx, client, sink, cfg)
	if sum.RunID != "" {
		line, err := json.Marshal(sum)
		if err == nil {
			fmt.Fprintln(stdout, string(line))
		}
		ev := log.Info()
		switch {
		case sum.Status == pipeline.StatusInterrupted:
			ev = log.Warn()
		case runErr != nil:
			ev = log.Error().Err(runErr)
		}
		ev.Str("run_id", sum.RunID).Str("status", sum.Status).Int64("profiles", sum.Profiles).
			Int64("rejects", sum.Rejects).Int64("pages", sum.Pages).Int64("requests", sum.Requests).
			Int64("retries", sum.Retries).Int64("rate_limited", sum.RateLimited).
			Int64("duplicates", sum.Duplicates).Int64("nul_values", sum.NULValues).
			Float64("duration_seconds", sum.Seconds).Time("window_end", sum.WindowEnd).Msg("run finished")
	}
	if merr := writeMetrics(ctx, c, sum, log); merr != nil {
		log.Warn().Err(merr).Msg("metrics")
	}
	return sum, explainRunError(runErr)
}

// openSink builds the sink the flags name.
func openSink(c *runConfig, log zerolog.Logger) (load.Sink, error) {
	switch c.Sink {
	case "postgres":
		s, err := postgres.New(c.DatabaseURL, postgres.Config{Schema: c.PGSchema, Migrate: !c.NoMigrate, Logger: log})
		if err != nil {
			return nil, usageError{fmt.Errorf("postgres sink: %w", err)}
		}
		return s, nil
	default:
		s, err := parquet.New(c.Out, parquet.Config{Compression: c.Compression, Revision: c.Revision, Logger: log})
		if err != nil {
			return nil, usageError{fmt.Errorf("parquet sink: %w", err)}
		}
		return s, nil
	}
}

// explainRunError adds what the user should do to the errors that have a
// clear remedy.
func explainRunError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, load.ErrLocked) {
		return fmt.Errorf("%w (wait for it to finish; a crashed run's lock is released automatically)", err)
	}
	return err
}

// dryRun checks the key with one small request and the target without
// writing anything.
func dryRun(ctx context.Context, c *runConfig, client *extract.Client, log zerolog.Logger, stdout io.Writer) error {
	if err := client.Probe(ctx); err != nil {
		return fmt.Errorf("dry run: API key and revision: %w", err)
	}
	target, err := checkTarget(ctx, c)
	if err != nil {
		return fmt.Errorf("dry run: target: %w", err)
	}
	fmt.Fprintf(stdout, "dry run ok: key accepted by %s (revision %s); %s\n", c.BaseURL, c.Revision, target)
	log.Debug().Msg("dry run finished")
	return nil
}
