package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/klaviyo-etl/klaviyo-etl/extract"
	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/load/parquet"
	"github.com/klaviyo-etl/klaviyo-etl/pipeline"
)

// budgetSpec is a latency-bound account with a scaled-down budget.
type budgetSpec struct {
	Latency  time.Duration `json:"latency"`
	Burst    extract.Rate  `json:"burst"`
	Steady   extract.Rate  `json:"steady"`
	Duration time.Duration `json:"duration"` // the run is stopped after this long
}

// runBudget runs the pipeline into Parquet against a simulator that
// answers in Latency ±20% and enforces Burst and Steady, the client told
// the same budget, and stops it after Duration. It reports the share of
// the steady budget used, measured on the requests the simulator admitted
// from the first one over the following whole steady windows, and the 429s
// the simulator answered.
func runBudget(ctx context.Context, spec childSpec) ([]measurement, error) {
	b := spec.Budget
	sim, err := klaviyosim.NewServer(klaviyosim.Config{
		Profiles: spec.Profiles, Seed: spec.Seed, APIKey: apiKey,
		Start: simStart, End: simEnd,
		Latency: b.Latency, Jitter: 0.2,
		Burst:  klaviyosim.Limit{N: b.Burst.N, Per: b.Burst.Per},
		Steady: klaviyosim.Limit{N: b.Steady.N, Per: b.Steady.Per},
	})
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	defer sim.Close()
	var mu sync.Mutex
	var arrivals []time.Time
	sim.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	})
	client, err := extract.New(extract.Config{
		BaseURL: sim.URL(), APIKey: apiKey, Revision: revision,
		Burst: b.Burst, Steady: b.Steady, Concurrency: spec.Concurrency,
		Logger: zerolog.Nop(),
	})
	if err != nil {
		return nil, fmt.Errorf("klaviyo client: %w", err)
	}
	sink, err := parquet.New(filepath.Join(spec.Dir, "export"), parquet.Config{Revision: revision, Logger: zerolog.Nop()})
	if err != nil {
		return nil, err
	}
	m := measurement{Name: "budget"}
	var sum pipeline.Summary
	err = timed(spec, &m, func() error {
		// The run's time starts here, after timed's collection, so that
		// all of it goes to requests.
		rctx, cancel := context.WithTimeout(ctx, b.Duration)
		defer cancel()
		var err error
		sum, err = pipeline.Run(rctx, client, sink, pipeline.Config{Revision: revision, Logger: zerolog.Nop()})
		return err
	})
	switch {
	case err == nil:
		return nil, fmt.Errorf("the run read all %d profiles before %s: give it more", spec.Profiles, b.Duration)
	case !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return nil, fmt.Errorf("run: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) == 0 {
		return nil, errors.New("no request reached the simulator")
	}
	// Whole steady windows from the first request: at most Steady.N
	// requests fit in each, however they are spread.
	windows := int(time.Since(arrivals[0]) / b.Steady.Per)
	if windows < 1 {
		return nil, fmt.Errorf("the run lasted less than one steady window (%s)", b.Steady.Per)
	}
	span := time.Duration(windows) * b.Steady.Per
	n := 0
	for _, t := range arrivals {
		if t.Sub(arrivals[0]) < span {
			n++
		}
	}
	c := sim.Counters()
	m.Rows = sum.Profiles
	m.JSONBytes = sum.Bytes
	m.Requests = c.Requests
	m.RateLimited = max(c.RateLimited, c.ByStatus[http.StatusTooManyRequests])
	m.SteadyShare = float64(n) / float64(windows*b.Steady.N)
	m.SpanSeconds = span.Seconds()
	m.InFlightMax = client.Stats().InFlightMax
	return []measurement{m}, nil
}
