package extract

import (
	"context"
	"io"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
)

// BenchmarkBudget walks a simulated account for 30 s at Klaviyo-like latency
// (500 ms ± 20%) under a scaled budget (burst 50/1s, steady 300/10s) and
// reports how much of the steady budget the walk used and how many 429s it
// provoked, measured on the server side.
func BenchmarkBudget(b *testing.B) {
	for _, bc := range []struct {
		name        string
		concurrency int
	}{{"auto", 0}, {"concurrency=1", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchBudget(b, bc.concurrency)
			}
		})
	}
}

func benchBudget(b *testing.B, concurrency int) {
	const walkFor = 30 * time.Second
	burst, steady := klaviyosim.Limit{N: 50, Per: time.Second}, klaviyosim.Limit{N: 300, Per: 10 * time.Second}
	s := newSim(b, klaviyosim.Config{
		Profiles: 200_000, Seed: 1, Latency: 500 * time.Millisecond, Jitter: 0.2,
		Burst: burst, Steady: steady,
	})
	var log serverLog
	s.Use(log.middleware)
	c := simClient(b, s, func(cfg *Config) {
		cfg.Concurrency = concurrency
		cfg.Burst, cfg.Steady = Rate{burst.N, burst.Per}, Rate{steady.N, steady.Per}
		cfg.MinBackoff, cfg.MaxBackoff = defaultMinBackoff, defaultMaxBackoff
	})
	var records int64
	start := time.Now()
	err := c.Walk(context.Background(), oneSliceField("created", simStart, simEnd), func(ctx context.Context, p Page) error {
		records += int64(len(p.Records))
		if time.Since(start) >= walkFor {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	if elapsed < walkFor {
		b.Fatalf("walk ended after %v: the account is too small to measure", elapsed)
	}

	// Share of the steady budget: requests the server admitted in each whole
	// steady window from the first request on, over the limit.
	entries := log.snapshot()
	sort.Slice(entries, func(i, j int) bool { return entries[i].arrived.Before(entries[j].arrived) })
	t0 := entries[0].arrived
	windows := int(entries[len(entries)-1].arrived.Sub(t0) / steady.Per)
	admitted := 0
	limited := 0
	for _, e := range entries {
		if e.status == http.StatusTooManyRequests {
			limited++
			continue
		}
		if e.arrived.Before(t0.Add(time.Duration(windows) * steady.Per)) {
			admitted++
		}
	}
	share := float64(admitted) / float64(windows*steady.N)
	ctr := s.Counters()
	st := c.Stats()
	b.ReportMetric(100*share, "%steady")
	b.ReportMetric(float64(limited), "429s")
	b.ReportMetric(float64(st.Requests)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(records)/elapsed.Seconds(), "profiles/s")
	b.ReportMetric(float64(st.InFlightMax), "inflight-max")
	b.ReportMetric(float64(ctr.MaxSteady), "max-per-steady-window")
	b.Logf("concurrency %d: %d requests in %v, %d whole steady windows, %d admitted in them (%.1f%% of %d), %d 429s (server %d), max burst %d/%d, max steady %d/%d, splits %d, overfetched %d",
		concurrency, st.Requests, elapsed.Round(time.Millisecond), windows, admitted, 100*share, windows*steady.N,
		limited, ctr.RateLimited, ctr.MaxBurst, burst.N, ctr.MaxSteady, steady.N, st.Splits, st.Overfetched)
}

// BenchmarkParsePage measures decoding one full page (100 profiles as the
// simulator renders them), the extractor's per-record work.
func BenchmarkParsePage(b *testing.B) {
	s := newSim(b, klaviyosim.Config{Profiles: 200, Seed: 1, Unlimited: true})
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api/profiles?sort=created&page%5Bsize%5D=100", nil)
	req.Header.Set("Authorization", "Klaviyo-API-Key pk_test")
	req.Header.Set("revision", "2026-07-15")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		doc, err := parsePage(body, "created")
		if err != nil {
			b.Fatal(err)
		}
		n += len(doc.records)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
