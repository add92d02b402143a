package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/klaviyo-etl/klaviyo-etl/extract"
	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/load"
	"github.com/klaviyo-etl/klaviyo-etl/load/parquet"
	"github.com/klaviyo-etl/klaviyo-etl/load/postgres"
	"github.com/klaviyo-etl/klaviyo-etl/pipeline"
)

// runPipeline is one klaviyo-etl run as cmd/klaviyo-etl wires it
// (extract.New, a sink, pipeline.Run with the command's defaults), timed
// from pipeline.Run's call to its return: sink Begin, every checkpoint and
// Close included; building the simulator and migrating the schema are not.
func runPipeline(ctx context.Context, spec childSpec) ([]measurement, error) {
	var walker pipeline.Walker
	switch {
	case spec.Records != "":
		walker = newFileWalker(spec.Records)
	default:
		url := spec.SimURL
		if url == "" {
			sim, err := klaviyosim.NewServer(throughputSim(spec))
			if err != nil {
				return nil, fmt.Errorf("simulator: %w", err)
			}
			defer sim.Close()
			url = sim.URL()
		}
		c, err := unlimitedClient(url, spec.Concurrency)
		if err != nil {
			return nil, fmt.Errorf("klaviyo client: %w", err)
		}
		walker = c
	}

	sinkLog := zerolog.Nop()
	if spec.SinkLog {
		sinkLog = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true}).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	var sink load.Sink
	var out string
	switch spec.Sink {
	case "parquet":
		out = filepath.Join(spec.Dir, "export")
		s, err := parquet.New(out, parquet.Config{Revision: revision, Logger: sinkLog})
		if err != nil {
			return nil, err
		}
		sink = s
	case "postgres":
		if err := postgres.Migrate(ctx, spec.DatabaseURL, spec.Schema); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		s, err := postgres.New(spec.DatabaseURL, postgres.Config{Schema: spec.Schema, Migrate: true, Logger: sinkLog})
		if err != nil {
			return nil, err
		}
		sink = s
	default:
		return nil, fmt.Errorf("unknown sink %q", spec.Sink)
	}

	cfg := pipeline.Config{Revision: revision, Since: spec.Since, Logger: zerolog.Nop()}
	m := measurement{Name: spec.Sink}
	var sum pipeline.Summary
	var st stages
	tw, ts := &timedWalker{Walker: walker, st: &st}, &timedSink{Sink: sink, st: &st}
	err := timed(spec, &m, func() error {
		var err error
		sum, err = pipeline.Run(ctx, tw, ts, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if sum.Profiles != int64(spec.Profiles) {
		return nil, fmt.Errorf("run loaded %d profiles of %d (%d rejects, %d duplicates)", sum.Profiles, spec.Profiles, sum.Rejects, sum.Duplicates)
	}
	m.Rows = sum.Profiles
	m.JSONBytes = sum.Bytes
	m.Requests = sum.Requests
	m.RateLimited = sum.RateLimited
	m.Rejects = sum.Rejects
	m.Busy = time.Duration(st.busy.Load()).Seconds()
	m.SinkWrite = time.Duration(st.write.Load()).Seconds()
	m.SinkCommit = time.Duration(st.commit.Load()).Seconds()
	if out != "" {
		m.OutBytes = dirSize(out)
	}
	return []measurement{m}, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// stages times the pipeline's parts from outside: how long the page
// callback ran (the runner: dedup, handing records to the transformers,
// and waiting for them and for the sink at each checkpoint), the time in the
// sink's Write (Parquet encoding, COPY; on the pipeline's writer goroutine,
// beside the transform) and in its Commit (footers and fsync, or the merge
// and COMMIT). Write and the callback run concurrently.
type stages struct {
	busy, write, commit atomic.Int64 // nanoseconds
}

type timedWalker struct {
	pipeline.Walker
	st *stages
}

func (w *timedWalker) Walk(ctx context.Context, win extract.Window, fn func(context.Context, extract.Page) error) error {
	return w.Walker.Walk(ctx, win, func(ctx context.Context, p extract.Page) error {
		start := time.Now()
		err := fn(ctx, p)
		w.st.busy.Add(int64(time.Since(start)))
		return err
	})
}

type timedSink struct {
	load.Sink
	st *stages
}

func (s *timedSink) Write(ctx context.Context, b load.Batch) error {
	start := time.Now()
	err := s.Sink.Write(ctx, b)
	s.st.write.Add(int64(time.Since(start)))
	return err
}

func (s *timedSink) Commit(ctx context.Context, st load.State) error {
	start := time.Now()
	err := s.Sink.Commit(ctx, st)
	s.st.commit.Add(int64(time.Since(start)))
	return err
}
