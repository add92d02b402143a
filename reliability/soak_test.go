package reliability

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
)

// memSample is the program's RSS when the simulator had served so many
// profiles.
type memSample struct {
	at     time.Duration
	served int64
	rssKB  int64
}

// flatness compares the highest RSS of the second half of a run (by
// profiles served) with that of the first half, after the first 10%: a
// program whose memory grows with the profile count has a second half
// well above its first.
func flatness(samples []memSample, total int64) (first, second int64, ok bool) {
	var a, b int
	for _, s := range samples {
		switch {
		case s.served < total/10:
		case s.served < total*55/100:
			first = max(first, s.rssKB)
			a++
		default:
			second = max(second, s.rssKB)
			b++
		}
	}
	return first, second, a >= 8 && b >= 8
}

// quartiles describes the RSS at 25, 50, 75 and 100% of the profiles.
func quartiles(samples []memSample, total int64) string {
	var parts []string
	for _, q := range []int64{25, 50, 75, 100} {
		var best *memSample
		for i := range samples {
			if samples[i].served <= total*q/100 {
				best = &samples[i]
			}
		}
		if best != nil {
			parts = append(parts, fmt.Sprintf("%d%%: %.0f MB", q, rssMB(best.rssKB)))
		}
	}
	return strings.Join(parts, ", ")
}

// TestSoak exports an account through each sink with 5% faults (every kind
// but hang) and 200 ms latency, sampling the program's memory: the output
// must be exact, and the RSS must not grow with the number of profiles:
// within a run (its second half against its first) and across runs (the
// peak at 1,000,000 profiles against the peak at 250,000). The short
// variant has 10,000 profiles; the long one 250,000 and 1,000,000 (10,000
// pages), with 32 chains in flight.
func TestSoak(t *testing.T) {
	t.Parallel()
	sizes := pick([]int{10_000}, []int{250_000, 1_000_000})
	for _, sink := range sinks {
		t.Run(sink, func(t *testing.T) {
			peaks := map[int]float64{}
			for _, profiles := range sizes {
				t.Run(fmt.Sprintf("%dk", profiles/1000), func(t *testing.T) { peaks[profiles] = soak(t, sink, profiles) })
			}
			if small, big := peaks[250_000], peaks[1_000_000]; small > 0 && big > 0 && big > 1.25*small+32 {
				t.Errorf("peak RSS grows with the profile count: %.0f MB at 250,000, %.0f MB at 1,000,000", small, big)
			}
		})
	}
}

// soak runs one soak export and returns the program's peak RSS in MiB.
func soak(t *testing.T, sink string, profiles int) float64 {
	sim := newSim(t, klaviyosim.Config{Profiles: profiles, Seed: 71, Latency: 200 * time.Millisecond, Jitter: 0.25,
		FaultRate: 0.05, Unlimited: true})
	tg := newTarget(t, sink)
	var mu sync.Mutex
	var samples []memSample
	began := time.Now()
	sp := spec{args: tg.args(append([]string{"--concurrency", "32", "--log-level", "warn"}, fastBudget...)...),
		env: tg.env(sim), sampleEvery: 250 * time.Millisecond,
		sample: func(kb int64) {
			served := sim.Counters().ProfilesServed
			mu.Lock()
			samples = append(samples, memSample{at: time.Since(began), served: served, rssKB: kb})
			mu.Unlock()
		}}
	r := run(t, sp)
	if r.code != 0 {
		t.Fatalf("soak run: %v", r)
	}
	ctr := sim.Counters()
	var faults int64
	for _, n := range ctr.Faults {
		faults += n
	}
	tl := checkExact(t, tg, sim.Profiles())
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(samples, func(i, j int) bool { return samples[i].at < samples[j].at })
	first, second, enough := flatness(samples, int64(profiles))
	flat := "too short to judge flatness"
	// Below a few row groups and checkpoints (64k rows, 100k
	// rows), memory rightly grows with the rows buffered.
	if enough && profiles >= 200_000 {
		flat = fmt.Sprintf("peak RSS %.0f MB in the first half, %.0f MB in the second", rssMB(first), rssMB(second))
		if float64(second) > 1.25*float64(first)+32*1024 {
			t.Errorf("memory grows with the profile count: %s", flat)
		}
	}
	rate := float64(profiles) / r.wall.Seconds()
	record(t, figure{Case: fmt.Sprintf("soak: %d profiles, 5%% faults, 200 ms latency, 32 chains", profiles), Sink: sink,
		Runs: 1, Outcome: fmt.Sprintf("exit 0, exact, %.0f s (%.0f profiles/s); %s", r.wall.Seconds(), rate, flat),
		Lost: tl.Lost, Dups: tl.Duplicates, Retries: retriesOf(r), PeakRSS: peakRSS(r), Seconds: r.wall.Seconds(),
		Extra: fmt.Sprintf("%d requests, %d faults served; RSS at %s; ru_maxrss %.0f MB, sampled VmHWM %.0f MB",
			ctr.Requests, faults, quartiles(samples, int64(profiles)), rssMB(r.rusageKB), rssMB(r.sampledKB))})
	return peakRSS(r)
}
