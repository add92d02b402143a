package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime/debug"
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
// limits, no latency, and no gzip unless spec.Gzip. Go's HTTP client asks for gzip, and
// compressing every page would cap the simulator itself (~74,000
// profiles/s on 2 cores) while it shares the cores with the pipeline; over
// a real network gzip is worth having.
func throughputSim(spec childSpec) klaviyosim.Config {
	return klaviyosim.Config{
		Profiles: spec.Profiles, Seed: spec.Seed, APIKey: apiKey,
		Start: simStart, End: simEnd,
		Unlimited: true, DisableGzip: !spec.Gzip,
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

// cachedSim is a throughput simulator, for a process of its own, that has rendered every record once,
// with the fields the pipeline's client asks for, and serves them from
// its cache (klaviyosim.Config.CacheRecords): generating profiles is the
// API's work, not the client's, and on a shared machine it would take
// ~1.4 µs of CPU per profile from the pipeline measured beside it. The
// ceilings pay nothing for their input either: they read files.
func cachedSim(ctx context.Context, spec childSpec) (*klaviyosim.Server, error) {
	cfg := throughputSim(spec)
	cfg.CacheRecords = !spec.NoSimCache
	sim, err := klaviyosim.NewServer(cfg)
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	if !cfg.CacheRecords {
		return sim, nil
	}
	if err := warmSim(ctx, sim.URL(), spec.Concurrency); err != nil {
		sim.Close()
		return nil, err
	}
	return sim, nil
}

// warmSim walks the whole account once through a client configured as the
// pipeline's, so that every page the pipeline asks for is served from the
// simulator's cache.
func warmSim(ctx context.Context, url string, concurrency int) error {
	c, err := unlimitedClient(url, concurrency)
	if err != nil {
		return fmt.Errorf("warm simulator: %w", err)
	}
	win := extract.Window{Field: "updated", Slices: []extract.Slice{{Start: since, End: simEnd.Add(time.Hour), Done: since}}}
	if err := c.Walk(ctx, win, func(context.Context, extract.Page) error { return nil }); err != nil {
		return fmt.Errorf("warm simulator: %w", err)
	}
	return nil
}

// serveSim serves a throughput simulator until stdin is closed: the
// parent closes it when the scenario using the simulator has ended.
func serveSim(ctx context.Context, spec childSpec, stdin io.Reader, stdout io.Writer) error {
	// The child's soft memory limit is the product's; the simulator is not
	// the product, and its cache alone is ~1.7 KB per profile.
	debug.SetMemoryLimit(math.MaxInt64)
	sim, err := cachedSim(ctx, spec)
	if err != nil {
		return err
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

// dumpRecords writes the pages the simulator serves, walked along one
// links.next chain, exactly as received, one per line (spec.Pages), and
// every record of them exactly as received, one per line (spec.Records):
// the input of the DuckDB and COPY ceilings and of the pipeline reading
// from a file.
func dumpRecords(ctx context.Context, spec childSpec) error {
	sim, err := klaviyosim.NewServer(throughputSim(spec))
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	defer sim.Close()
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	open := func(path string) (*bufio.Writer, error) {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("dump: %w", err)
		}
		files = append(files, f)
		return bufio.NewWriterSize(f, 1<<20), nil
	}
	pages, err := open(spec.Pages)
	if err != nil {
		return err
	}
	records, err := open(spec.Records)
	if err != nil {
		return err
	}
	next := sim.URL() + "/api/profiles?sort=created&page%5Bsize%5D=100"
	n := 0
	for next != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		req.Header.Set("Authorization", "Klaviyo-API-Key "+apiKey)
		req.Header.Set("revision", revision)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("dump: %s: %s", resp.Status, body)
		}
		// RawMessage keeps each record's bytes exactly.
		var page struct {
			Data  []json.RawMessage `json:"data"`
			Links struct {
				Next string `json:"next"`
			} `json:"links"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return fmt.Errorf("dump: page: %w", err)
		}
		if bytes.IndexByte(body, '\n') >= 0 {
			return errors.New("dump: a page body spans lines")
		}
		pages.Write(body)
		pages.WriteByte('\n')
		for _, r := range page.Data {
			records.Write(r)
			records.WriteByte('\n')
			n++
		}
		next = page.Links.Next
	}
	if n != spec.Profiles {
		return fmt.Errorf("dump: %d records, want %d", n, spec.Profiles)
	}
	for i, w := range []*bufio.Writer{pages, records} {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		if err := files[i].Close(); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
	}
	files = nil
	return nil
}
