package main

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/klaviyo-etl/klaviyo-etl/metrics"
	"github.com/klaviyo-etl/klaviyo-etl/pipeline"
)

// writeMetrics writes and pushes the run's metrics when asked; both are
// derived from the same summary the run prints.
func writeMetrics(ctx context.Context, c *runConfig, sum pipeline.Summary, log zerolog.Logger) error {
	if c.MetricsFile == "" && c.MetricsPushURL == "" {
		return nil
	}
	m := metricsOf(c, sum)
	if c.MetricsFile != "" {
		if err := metrics.WriteFile(c.MetricsFile, m); err != nil {
			return err
		}
		log.Debug().Str("path", c.MetricsFile).Msg("metrics written")
	}
	if c.MetricsPushURL != "" {
		// Push even when the run was interrupted: that is when the numbers matter.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		if err := metrics.Push(pctx, nil, c.MetricsPushURL, m); err != nil {
			return err
		}
		log.Debug().Msg("metrics pushed")
	}
	return nil
}

func metricsOf(c *runConfig, sum pipeline.Summary) metrics.Run {
	target := c.Out
	if c.Sink == "postgres" {
		target = c.PGSchema
	}
	status := sum.Status
	if status == "" {
		status = "failed"
	}
	return metrics.Run{
		Target:         target,
		Status:         status,
		CursorField:    c.CursorField,
		Profiles:       sum.Profiles,
		Relationships:  sum.Relationships,
		Rejects:        sum.Rejects,
		RejectedWhole:  sum.RejectedWhole,
		Duplicates:     sum.Duplicates,
		Pages:          sum.Pages,
		Requests:       sum.Requests,
		RequestsByCode: sum.RequestsByCode,
		RateLimited:    sum.RateLimited,
		Retries:        sum.Retries,
		NULValues:      sum.NULValues,
		Duration:       sum.Duration,
		WindowEnd:      sum.WindowEnd,
		Lag:            time.Duration(sum.LagSeconds * float64(time.Second)),
	}
}
