package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract"
	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/rs/zerolog"
)

const (
	revision = "2026-07-15"
	apiKey   = "pk_test"
)

// The synthetic account's created times lie in these two years, well in
// the past, so every run reads all of it whatever the clock says.
var (
	simStart = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	simEnd   = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// since makes a run read the whole account again (the upsert runs).
	since = simStart.Add(-time.Hour)
)

// throughputSim is the simulator of the throughput scenarios: no rate
// limits, no latency, and no gzip. Go's HTTP client asks for gzip, and
// compressing every page would cap the simulator itself (~74,000
// profiles/s on 2 cores) while it shares the cores with the pipeline; over
// a real network gzip is worth having.
func throughputSim(profiles int, seed int64) klaviyosim.Config {
	return klaviyosim.Config{
		Profiles: profiles, Seed: seed, APIKey: apiKey,
		Start: simStart, End: simEnd,
		Unlimited: true, DisableGzip: true,
	}
}

// Budget of the throughput runs: how a user runs klaviyo-etl against an
// API with no budget to respect, --rate-burst 5000/1s --rate-steady
// 300000/1m, several times what the pipeline reaches on 2 cores (~1,000
// requests/s). Not more: the client's sliding windows keep one slot per
// request of the window, so 60,000,000/1m would cost 1.4 GB.
var (
	throughputBurst  = extract.Rate{N: 5000, Per: time.Second}
	throughputSteady = extract.Rate{N: 300_000, Per: time.Minute}
)

// unlimitedClient is the client of the throughput runs.
func unlimitedClient(baseURL string, concurrency int) (*extract.Client, error) {
	return extract.New(extract.Config{
		BaseURL:     baseURL,
		APIKey:      apiKey,
		Revision:    revision,
		Burst:       throughputBurst,
		Steady:      throughputSteady,
		Concurrency: concurrency,
		Logger:      zerolog.Nop(),
	})
}

// simAddr is the first line a sim child prints.
type simAddr struct {
	URL string `json:"url"`
}

// serveSim serves a throughput simulator until stdin is closed: the
// parent closes it when the scenario using the simulator has ended.
func serveSim(ctx context.Context, spec childSpec, stdin io.Reader, stdout io.Writer) error {
	sim, err := klaviyosim.NewServer(throughputSim(spec.Profiles, spec.Seed))
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	defer sim.Close()
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	line, _ := json.Marshal(simAddr{URL: sim.URL()})
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// dumpRecords writes every record the simulator serves, exactly as
// received, one per line: the input of the DuckDB and COPY ceilings and of
// the pipeline reading from a file.
func dumpRecords(ctx context.Context, spec childSpec) error {
	sim, err := klaviyosim.NewServer(throughputSim(spec.Profiles, spec.Seed))
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	defer sim.Close()
	client, err := unlimitedClient(sim.URL(), spec.Concurrency)
	if err != nil {
		return err
	}
	f, err := os.Create(spec.Records)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	n := 0
	win := extract.Window{Field: "created", Slices: []extract.Slice{{Start: since, End: simEnd, Done: since}}}
	err = client.Walk(ctx, win, func(_ context.Context, p extract.Page) error {
		for _, r := range p.Records {
			w.Write(r.Raw)
			w.WriteByte('\n')
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dump: walk: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	if n != spec.Profiles {
		return fmt.Errorf("dump: %d records, want %d", n, spec.Profiles)
	}
	return f.Close()
}
